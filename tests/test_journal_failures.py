"""A journal that cannot be written loses the resume, never the answers."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from fanwise import Call, Engine, Fulfilled, Request
from fanwise.cli import cli
from fanwise.cli.errors import EXIT_UNRECORDED
from fanwise.journal import Journal, JournalStore
from fanwise.prices import load_prices
from tests.scripted import ScriptedModel


async def test_a_failed_journal_write_keeps_the_outcome_and_is_counted(tmp_path: Path) -> None:
    """With the calls table gone, the run still returns every answer and counts what it lost."""
    journal = Journal.open(tmp_path / "journal.db")
    run_id = journal.start_run("workflow", "t", {}, endpoint="scripted")
    store = JournalStore(journal, run_id, prices=load_prices(), endpoint="scripted")
    with sqlite3.connect(tmp_path / "journal.db") as other:
        other.execute("DROP TABLE calls")
    outcomes = await Engine(ScriptedModel(), store=store).run(
        [Call(Request.text("a")), Call(Request.text("b"))]
    )
    journal.close()
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    assert store.unrecorded == 2 and isinstance(store.write_error, sqlite3.Error)


def broken_journal(tmp_path: Path) -> Path:
    """A journal whose calls table is gone: every call row fails to write."""
    journal = tmp_path / "journal.db"
    Journal.open(journal).close()
    with sqlite3.connect(journal) as other:
        other.execute("DROP TABLE calls")
    return journal


def travel(journal: Path, *flags: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["travel", "Kyoto", "--offline-latency", "0,0.01", "--journal", str(journal), *flags],
        env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""},
    )


def test_on_journal_error_continue_warns_when_the_journal_lost_calls(tmp_path: Path) -> None:
    """With --on-journal-error continue the command prints its result, exits 0, and warns that
    a resume would ask the lost calls again."""
    result = travel(broken_journal(tmp_path), "--json", "--on-journal-error", "continue")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "complete"
    assert "the journal could not record 4 settled calls" in result.stderr


def test_a_journal_that_fails_stops_the_run_and_marks_it_unrecorded(tmp_path: Path) -> None:
    """By default the first failed write stops the sending (the synthesis is not sent), says so
    in one line with the cause, exits 5 and leaves the run unrecorded, never complete."""
    journal = broken_journal(tmp_path)
    result = travel(journal, "--plain")
    assert result.exit_code == EXIT_UNRECORDED, result.stderr
    said = [line for line in result.stderr.splitlines() if "stopped sending" in line]
    assert said[0].startswith("fanwise: error: the journal could not record a call (")
    assert "no such table: calls" in said[0] and "Traceback" not in result.stderr
    assert "Every answer paid for is in stdout" in result.stderr
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("unrecorded",)]


def test_processes_creating_one_journal_at_once_all_open_it(tmp_path: Path) -> None:
    """Six processes that create the same blank journal together all succeed, at one schema."""
    import subprocess
    import sys
    import time

    path = tmp_path / "journal.db"
    start_at = time.time() + 1.0  # every process starts its open at the same instant
    script = (
        "import sys, time\n"
        "from fanwise.journal import Journal\n"
        f"time.sleep(max(0, {start_at} - time.time()))\n"
        "Journal.open(sys.argv[1]).close()\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)], stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=60)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, errors
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
