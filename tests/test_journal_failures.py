"""A journal that cannot be written loses the resume, never the answers."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from fanwise import Call, Engine, Fulfilled, Request
from fanwise.cli import cli
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


def test_the_cli_warns_when_the_journal_lost_calls(tmp_path: Path) -> None:
    """The command still prints its result and exits 0, and warns that resume would re-ask."""
    journal = tmp_path / "journal.db"
    Journal.open(journal).close()
    with sqlite3.connect(journal) as other:
        other.execute("DROP TABLE calls")
    result = CliRunner().invoke(
        cli,
        ["travel", "Kyoto", "--offline-latency", "0,0.01", "--journal", str(journal), "--json"],
        env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""},
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "complete"
    assert "the journal could not record 4 settled calls" in result.stderr


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
