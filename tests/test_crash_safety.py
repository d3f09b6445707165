"""Nothing lost, nothing paid twice: kill -9, Ctrl-C and two processes on one journal.

Each test drives real ``fanwise`` processes; the simulator's per-prompt attempt counts prove
that no call that had finished was sent again.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanwise import Call, Fulfilled, Request
from fanwise.journal import Journal
from fanwise.models.base import Completion
from tests.conftest import SimulatorProcess

pytestmark = pytest.mark.slow
QUESTIONS = [f"Question {n} about the sea?" for n in range(12)]


def start(*args: str, base_url: str = "") -> subprocess.Popen[str]:
    """A real ``python -m fanwise`` process, with its own process group."""
    env = {**os.environ, "OPENAI_API_KEY": "test", "PYTHONUNBUFFERED": "1"}
    target = ["--provider", "openai", "--base-url", base_url] if base_url else []
    return subprocess.Popen(
        [sys.executable, "-m", "fanwise", *args, *target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def research(journal: Path, base_url: str) -> subprocess.Popen[str]:
    asks = [part for q in QUESTIONS for part in ("-q", q)]
    return start(
        "research", "the sea", *asks, "-c", "3", "--retries", "0", "--quiet", "--plain",
        "--journal", str(journal), base_url=base_url,
    )  # fmt: skip


def finished_prompts(journal: Path) -> set[str]:
    """The prompts whose calls the journal holds as fulfilled."""
    if not journal.exists():
        return set()
    db = sqlite3.connect(journal, timeout=10)
    try:
        rows = db.execute("SELECT label FROM calls WHERE status = 'fulfilled'").fetchall()
    except sqlite3.OperationalError:  # not migrated yet
        return set()
    finally:
        db.close()
    return {label for (label,) in rows}


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def attempts(sim: SimulatorProcess) -> dict[str, int]:
    with urllib.request.urlopen(f"{sim.url}/_stats", timeout=10) as response:
        counts: dict[str, int] = json.load(response)["attempts"]
    return {prompt: n for prompt, n in counts.items() if prompt in QUESTIONS}


def resume(journal: Path) -> dict[str, Any]:
    done = start("resume", "1", "--journal", str(journal), "--json", "--quiet")
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def test_kill_9_loses_only_the_calls_in_flight(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """After kill -9 and a resume, every question is answered and no finished one was re-sent."""
    sim = spawn_simulator("--latency", "uniform:0.1,0.3")
    journal = tmp_path / "journal.db"
    process = research(journal, sim.base_url)
    wait_for(lambda: len(finished_prompts(journal)) >= 4)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    before = finished_prompts(journal)
    assert 4 <= len(before) < len(QUESTIONS)

    data = resume(journal)
    assert data["status"] == "complete"
    assert all(q["status"] == "fulfilled" for q in data["questions"])
    sent = attempts(sim)
    assert set(sent) == set(QUESTIONS)
    assert all(sent[prompt] == 1 for prompt in before), "a finished call was sent again"
    assert sum(sent.values()) <= len(QUESTIONS) + 3, "only the 3 calls in flight are repeated"


def test_first_ctrl_c_keeps_finished_calls_and_prints_the_resume_command(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """SIGINT cancels the calls in flight, exits 130 and says how to resume; resume finishes."""
    sim = spawn_simulator("--latency", "uniform:0.1,0.3")
    journal = tmp_path / "journal.db"
    process = research(journal, sim.base_url)
    wait_for(lambda: len(finished_prompts(journal)) >= 2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert f"fanwise resume 1 --journal {journal}" in err and "Traceback" not in err
    status = sqlite3.connect(journal).execute("SELECT status FROM runs").fetchone()[0]
    assert status == "interrupted"
    before = finished_prompts(journal)

    assert resume(journal)["status"] == "complete"
    sent = attempts(sim)
    assert all(sent[prompt] == 1 for prompt in before)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_the_run_as_ctrl_c_does(
    spawn_simulator: Callable[..., SimulatorProcess],
    tmp_path: Path,
    signum: signal.Signals,
    code: int,
) -> None:
    """SIGTERM (SIGHUP) exits 143 (129), prints the resume line, leaves the run interrupted;
    the resume then finishes without sending a finished call again."""
    sim = spawn_simulator("--latency", "uniform:0.1,0.3")
    journal = tmp_path / "journal.db"
    process = research(journal, sim.base_url)
    wait_for(lambda: len(finished_prompts(journal)) >= 2)
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode == code, err
    assert f"fanwise resume 1 --journal {journal}" in err and "Traceback" not in err
    row = sqlite3.connect(journal).execute("SELECT status, reason FROM runs").fetchone()
    assert row == ("interrupted", f"interrupted ({signum.name})")
    before = finished_prompts(journal)

    assert resume(journal)["status"] == "complete"
    sent = attempts(sim)
    assert set(sent) == set(QUESTIONS), "no question lost"
    assert all(sent[prompt] == 1 for prompt in before)


SLOW_CLEANUP = textwrap.dedent(
    """
    import asyncio, sys
    from fanwise.cli.interrupt import run_interruptible

    async def main() -> None:
        try:
            print("running", flush=True)
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            print("cleaning up", flush=True)
            await asyncio.sleep(60)  # a cleanup that would take a minute
            raise

    try:
        run_interruptible(main())
    except KeyboardInterrupt:
        sys.exit(130)
    """
)


def test_a_second_ctrl_c_exits_at_once() -> None:
    """While the first Ctrl-C's cleanup runs, a second one ends the process with 130 at once."""
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLEANUP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "running\n"
    process.send_signal(signal.SIGINT)
    assert process.stdout.readline() == "cleaning up\n"
    assert process.poll() is None, "the first Ctrl-C waits for the cleanup"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=5)
    assert process.returncode == 130
    assert "interrupted again: exiting now" in err


def test_two_processes_share_one_journal_without_corrupting_it(tmp_path: Path) -> None:
    """Two batches writing one journal at once both finish, every call recorded, file intact."""
    journal = tmp_path / "journal.db"
    runs = []
    for name in ("a", "b"):
        source = tmp_path / f"{name}.jsonl"
        source.write_text("".join(json.dumps({"prompt": f"{name} {n}"}) + "\n" for n in range(300)))
        flags = ["--journal", str(journal), "--provider", "offline", "--quiet", "-c", "16"]
        flags += ["--offline-latency", "0,0.005", "-o", str(tmp_path / f"{name}.out")]
        runs.append(start("batch", str(source), *flags))
    for process in runs:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    db = sqlite3.connect(journal)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = db.execute("SELECT run_id, COUNT(*) FROM calls GROUP BY run_id").fetchall()
    assert sorted(counts) == [(1, 300), (2, 300)]
    assert db.execute("SELECT status FROM runs").fetchall() == [("complete",), ("complete",)]


HOLD_WRITE_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE runs SET topic = 'held' WHERE id = 1")
    print("locked", flush=True)
    time.sleep(0.5)
    db.execute("COMMIT")
    """
)


def test_a_writer_waits_for_another_processes_write_instead_of_failing(
    tmp_path: Path,
) -> None:
    """While another process holds the write lock, recording a call waits, then succeeds."""
    path = tmp_path / "journal.db"
    with Journal.open(path) as journal:
        run_id = journal.start_run("workflow", "t", {}, endpoint="e")
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_WRITE_LOCK, str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        call = Call(Request.text("q"))
        journal.record_call(run_id, 0, call, Fulfilled(Completion("a")), cost=0.0)
        holder.wait(timeout=10)
        assert holder.returncode == 0
        assert journal.totals(run_id).fulfilled == 1
        assert journal.run(run_id) is not None
