"""Durable when the disk, the output or the journal's lock is in trouble (issue 28).

Real ``fanwise batch`` processes against the simulator over loopback; a full disk is a journal
or an output that fails on command (``tests/processes.py``), as a full filesystem fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanwise import Call, Engine, Request, RetryPolicy
from fanwise.cli.errors import EXIT_OUTPUT_FAILED, EXIT_UNRECORDED
from fanwise.events import CallSettled, CallStarted, Event
from fanwise.journal import Journal, JournalStore
from fanwise.outcome import ErrorKind, Rejected
from fanwise.prices import load_prices
from tests.conftest import SimulatorProcess
from tests.processes import run_fanwise, start_failing_fanwise, start_fanwise
from tests.scripted import Reply, ScriptedModel

pytestmark = pytest.mark.slow
LINES = 240
CONCURRENCY = 8
KEY = {"OPENAI_API_KEY": "test"}


def batch_input(folder: Path, n: int = LINES) -> Path:
    source = folder / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"prompt": f"p{i}", "custom_id": f"c{i}"}) + "\n" for i in range(n))
    )
    return source


def sent(sim: SimulatorProcess) -> int:
    """How many requests the simulator answered."""
    with urllib.request.urlopen(f"{sim.url}/_stats", timeout=10) as response:
        counts: dict[str, int] = json.load(response)["attempts"]
    return sum(counts.values())


def answered(output: Path) -> set[str]:
    """The custom_ids with an answer in the output; every line must be whole JSON."""
    records = [json.loads(line) for line in output.read_text().splitlines()]
    ids = [r["custom_id"] for r in records if (r["response"] or {}).get("status_code") == 200]
    assert len(ids) == len(set(ids)), "a custom_id answered twice"
    return set(ids)


def status(journal: Path) -> str:
    with sqlite3.connect(journal) as db:
        row = db.execute("SELECT status FROM runs WHERE id = 1").fetchone()
    return str(row[0])


def batch_flags(journal: Path, output: Path, sim: SimulatorProcess) -> list[str]:
    return [
        *("-o", str(output), "-c", str(CONCURRENCY), "--journal", str(journal), "--quiet"),
        *("--provider", "openai", "--base-url", sim.base_url, "--retries", "0"),
    ]


def test_a_full_journal_stops_sending_and_resume_pays_no_answer_twice(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """Journal disk full: one line with the cause, at most -c requests after the first failed
    write, exit 5, the run unrecorded (never complete), every paid answer in -o; a resume takes
    those answers from -o and sends only the rest: no call is paid twice."""
    sim = spawn_simulator("--latency", "uniform:0.01,0.03")
    source, journal, output = batch_input(tmp_path), tmp_path / "j.db", tmp_path / "out.jsonl"
    failing_after = 40
    process = start_failing_fanwise(
        "batch",
        str(source),
        *batch_flags(journal, output, sim),
        journal_fails_after=failing_after,
        env=KEY,
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_UNRECORDED, err
    assert "Traceback" not in err
    first = [line for line in err.splitlines() if "stopped sending" in line]
    assert first[0].startswith("fanwise: error: the journal could not record a call (database")
    assert "fanwise resume 1" in err and f"--out {output}" in err
    paid = sent(sim)
    assert paid <= failing_after + 1 + CONCURRENCY, "more than -c requests after the failure"
    assert len(answered(output)) == paid, "every answer paid for is in the output"
    assert status(journal) == "unrecorded"

    done = run_fanwise("resume", "1", "--journal", str(journal), "--quiet", env=KEY)
    assert done.returncode == 0, done.stderr
    assert "answers from --out" in done.stderr
    assert answered(output) == {f"c{i}" for i in range(LINES)}
    assert sent(sim) == LINES, "an answer kept in -o was paid for again"
    assert status(journal) == "complete"


def test_a_resume_killed_a_second_in_keeps_every_answer_of_the_output(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """A resume killed one second in leaves every answer that was in -o on disk (it writes a
    temporary file, renamed over -o only at the end); the next resume finishes the run."""
    sim = spawn_simulator("--latency", "uniform:0.01,0.03")
    source, journal, output = batch_input(tmp_path), tmp_path / "j.db", tmp_path / "out.jsonl"
    process = start_failing_fanwise(
        "batch", str(source), *batch_flags(journal, output, sim), journal_fails_after=30, env=KEY
    )
    process.communicate(timeout=60)
    before = answered(output)
    assert 30 <= len(before) < LINES

    slow = ("resume", "1", "--journal", str(journal), "--quiet", "-c", "1")
    resuming = start_fanwise(*slow, env=KEY)
    time.sleep(1.0)
    assert resuming.poll() is None, "the resume should still be running"
    resuming.send_signal(signal.SIGKILL)
    resuming.communicate(timeout=10)
    assert before <= answered(output), "an answer in -o was lost"

    done = run_fanwise("resume", "1", "--journal", str(journal), "--quiet", env=KEY)
    assert done.returncode == 0, done.stderr
    assert answered(output) == {f"c{i}" for i in range(LINES)}
    assert not list(tmp_path.glob(".out.jsonl.*")), "the temporary file is gone"


def test_a_full_output_disk_stops_with_one_line_and_no_torn_line(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """Output disk full: one error line with the resume command, exit 6, no traceback, no torn
    line, the run interrupted; the resume writes the whole output, paying for nothing twice."""
    sim = spawn_simulator("--latency", "uniform:0.01,0.03")
    source, journal, output = batch_input(tmp_path), tmp_path / "j.db", tmp_path / "out.jsonl"
    process = start_failing_fanwise(
        "batch",
        str(source),
        *batch_flags(journal, output, sim),
        output_fails_after=20_000,
        env=KEY,
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_OUTPUT_FAILED, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"fanwise: error: cannot write --out {output} (No space left")
    assert lines[0].endswith(f"fanwise resume 1 --journal {journal}")
    assert output.read_bytes().endswith(b"\n") and 0 < len(answered(output)) < LINES
    assert status(journal) == "interrupted"

    done = run_fanwise("resume", "1", "--journal", str(journal), "--quiet", env=KEY)
    assert done.returncode == 0, done.stderr
    assert answered(output) == {f"c{i}" for i in range(LINES)}
    assert sent(sim) == LINES, "a call answered before the failure was paid for again"


def test_calls_a_full_output_kept_from_being_sent_are_not_failures(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """Output disk full with the per-call lines on: the calls never sent print no failure line
    and leave no failed row nor open sent mark in the journal (the resume sends them)."""
    sim = spawn_simulator("--latency", "uniform:0.01,0.03")
    source, journal, output = batch_input(tmp_path), tmp_path / "j.db", tmp_path / "out.jsonl"
    flags = [flag for flag in batch_flags(journal, output, sim) if flag != "--quiet"]
    process = start_failing_fanwise(
        "batch", str(source), *flags, "--plain", output_fails_after=20_000, env=KEY
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_OUTPUT_FAILED, err
    assert "not sent:" not in err and "Traceback" not in err, err
    assert " 0 rejected, " in err and " not sent · " in err, err  # the summary counts them apart
    assert status(journal) == "interrupted"
    with sqlite3.connect(journal) as db:
        failed = db.execute("SELECT COUNT(*) FROM calls WHERE status = 'rejected'").fetchone()
        marks = db.execute("SELECT COUNT(*) FROM sent").fetchone()
    assert failed[0] == 0 and marks[0] == 0, (failed, marks)


HOLD_THE_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    print("ready", flush=True)
    sys.stdin.readline()
    db.execute("BEGIN IMMEDIATE")
    print(time.time(), flush=True)
    time.sleep(float(sys.argv[2]))
    db.execute("COMMIT")
    print(time.time(), flush=True)
    """
)


async def test_a_journal_locked_by_another_process_slows_sending_never_the_loop(
    tmp_path: Path,
) -> None:
    """While another process holds the journal's write lock for 5 s, the event loop runs on:
    a call in flight is answered and another's timeout fires during the lock, the loop never
    stalls; the next call is sent once the lock is gone, and every row is then committed."""
    path = tmp_path / "journal.db"
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_THE_LOCK, str(path), "5",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdin is not None and holder.stdout is not None
    assert await holder.stdout.readline() == b"ready\n"  # started: it takes the lock at once
    seen: list[tuple[float, Event]] = []
    both_started = asyncio.Event()

    def observe(event: Event) -> None:
        seen.append((time.time(), event))
        if sum(isinstance(e, CallStarted) for _, e in seen) >= 2:
            both_started.set()

    with Journal.open(path) as journal:
        run_id = journal.start_run("batch", "t", {}, endpoint="scripted")
        store = JournalStore(journal, run_id, prices=load_prices(), endpoint="scripted")
        model = ScriptedModel()
        model.enqueue("answered", Reply(delay=1.0))
        model.enqueue("timed out", Reply(delay=30.0))
        engine = Engine(
            model,
            store=store,
            concurrency=2,
            timeout=2.0,
            retry=RetryPolicy(0),
            observer=observe,
        )
        prompts = ("answered", "timed out", "after the lock")
        running = asyncio.create_task(engine.run([Call(Request.text(p)) for p in prompts]))
        await both_started.wait()
        holder.stdin.write(b"go\n")
        locked = float(await holder.stdout.readline())
        gaps: list[float] = []
        while not running.done():
            tick = time.monotonic()
            await asyncio.sleep(0.05)
            gaps.append(time.monotonic() - tick)
        outcomes = await running
        released = float(await holder.stdout.readline())
        await holder.wait()
        rows = journal.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    settled = {e.label: t for t, e in seen if isinstance(e, CallSettled)}
    assert locked < settled["answered"] < released
    assert locked < settled["timed out"] < released
    timed_out = outcomes[1]
    assert isinstance(timed_out, Rejected) and timed_out.kind is ErrorKind.TIMEOUT
    started = {e.label: t for t, e in seen if isinstance(e, CallStarted)}
    assert started["after the lock"] >= released, "a call went out before its commit"
    assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f} s"
    assert rows == 3


def test_write_ahead_marks_count_the_calls_a_kill_may_have_paid(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """After kill -9, `fanwise runs --json` counts the calls sent and never answered and
    gives the cost as a range; a resume keeps that count and sends them again."""
    sim = spawn_simulator("--latency", "uniform:0.3,0.5")
    source, journal, output = batch_input(tmp_path, 60), tmp_path / "j.db", tmp_path / "o.jsonl"
    process = start_fanwise(
        "batch", str(source), *batch_flags(journal, output, sim), "--model", "gpt-4o-mini", env=KEY
    )
    deadline = time.monotonic() + 30
    while not _recorded(journal, 10):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)

    def run_record() -> dict[str, Any]:
        listed = run_fanwise("runs", "--json", "--journal", str(journal))
        assert listed.returncode == 0, listed.stderr
        record: dict[str, Any] = json.loads(listed.stdout)[0]
        return record

    totals = run_record()["totals"]
    assert 1 <= totals["unanswered_calls"] <= CONCURRENCY
    assert totals["cost_usd_max"] > totals["cost_usd"]
    shown = run_fanwise("show", "1", "--journal", str(journal))
    assert f"{totals['unanswered_calls']} calls were sent and never answered" in shown.stderr

    done = run_fanwise("resume", "1", "--journal", str(journal), "--quiet", env=KEY)
    assert done.returncode == 0, done.stderr
    after = run_record()["totals"]
    assert after["unanswered_calls"] == totals["unanswered_calls"], "still possibly paid"
    assert answered(output) == {f"c{i}" for i in range(60)}


def _recorded(journal: Path, at_least: int) -> bool:
    if not journal.exists():
        return False
    try:
        with sqlite3.connect(journal, timeout=10) as db:
            return int(db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]) >= at_least
    except sqlite3.OperationalError:
        return False


def test_a_failed_output_write_is_cut_back_and_later_lines_dropped(tmp_path: Path) -> None:
    """The sink keeps the file at its last whole line once a write fails, and writes no more."""
    from fanwise.batch.sink import LineSink, open_file

    path = tmp_path / "x.jsonl"
    fd = open_file(str(path))
    sink = LineSink(fd=fd)
    assert sink.write('{"a": 1}')
    os.close(fd)  # the next write fails (EBADF), as a full disk would
    assert not sink.write('{"b": 2}') and isinstance(sink.error, OSError)
    assert not sink.write('{"c": 3}')
    assert path.read_text() == '{"a": 1}\n'
