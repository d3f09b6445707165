"""What writing each outcome to the journal costs, and whether a batch's memory stays flat.

One command, ``python benchmarks/journal_write.py``, prints:

1. The insert and commit of one call row (WAL, ``synchronous=NORMAL``, the same pre-serialised
   row) through sync ``sqlite3`` and through ``aiosqlite`` (which hands each statement to its
   thread), and their ratio; then the whole ``Journal.record_call`` (JSON and redaction
   included), with no event loop (a commit per row) and in a running loop with 1, 10 and 100
   rows settled per pass, each pass awaiting its commit by the writer thread: the time to
   commit, the share of it spent on the event loop's thread (serialising the row and queueing
   it), and the CPU of both threads. Best of three rounds of 2,000 writes each.
2. The tracemalloc peak of ``run_batch`` with the journal for N lines and 10 N lines, with a
   model that keeps nothing. The input is streamed, not held; what grows is the set of
   ``custom_id`` values seen, which finds a duplicate on any later line (about 170 bytes a
   line here, so the ratio is near 10, not 1).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fanwise import Call, Completion, Engine, Fulfilled, Request, Usage
from fanwise.batch import run_batch
from fanwise.journal import Journal, JournalStore
from fanwise.models.base import DeltaSink, Model
from fanwise.models.settings import ModelSettings
from fanwise.prices import builtin_prices

WRITES = 2000
ROUNDS = 3
ANSWER = "A plausible answer of a realistic length. " * 40  # about 1.7 kB, like a short reply
OUTCOME = Fulfilled(Completion(ANSWER, Usage(300, 400), "gpt-5"), 0.5, 0.0)
ROW = json.dumps(OUTCOME.to_dict())
INSERT = (
    "INSERT INTO calls (run_id, idx, key, label, request, status, outcome, attempts, latency,"
    " cost, recorded_at) VALUES (1, ?, ?, ?, '{}', 'fulfilled', ?, 1, 0.5, 0.001, 0)"
)
RUN = (
    "INSERT INTO runs (kind, topic, spec, endpoint, status, started_at)"
    " VALUES ('batch', 'bench', '{}', 'bench', 'running', 0)"
)


def fresh(folder: Path, name: str) -> Path:
    path = folder / f"{name}-{time.perf_counter_ns()}.db"
    Journal.open(path).close()  # the real schema, WAL
    return path


def sqlite_write(folder: Path) -> float:
    db = sqlite3.connect(fresh(folder, "sync"), isolation_level=None)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(RUN)
    started = time.perf_counter()
    for n in range(WRITES):
        db.execute(INSERT, (n, f"k{n}", f"question {n}", ROW))
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed / WRITES


async def aiosqlite_write(folder: Path) -> float | None:
    try:
        import aiosqlite
    except ImportError:
        return None
    async with aiosqlite.connect(fresh(folder, "async"), isolation_level=None) as db:
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute(RUN)
        started = time.perf_counter()
        for n in range(WRITES):
            await db.execute(INSERT, (n, f"k{n}", f"question {n}", ROW))
        return (time.perf_counter() - started) / WRITES


def journal_write(folder: Path) -> float:
    """``record_call`` with no event loop running: each row commits on its own."""
    with Journal.open(fresh(folder, "journal")) as journal:
        run_id = journal.start_run("batch", "bench", {}, endpoint="bench")
        calls = [Call(Request.text(f"question {n}")) for n in range(WRITES)]
        started = time.perf_counter()
        for index, call in enumerate(calls):
            journal.record_call(run_id, index, call, OUTCOME, cost=0.001)
        return (time.perf_counter() - started) / WRITES


@dataclass(frozen=True)
class PassCost:
    """Per row: wall time until committed, the event loop's own share, and CPU (all threads)."""

    wall: float
    loop: float
    cpu: float


async def journal_write_in_passes(folder: Path, per_pass: int) -> PassCost:
    """``record_call`` in a running loop, ``per_pass`` rows a pass, each pass then awaiting its
    commit (``Journal.committed``, as the engine does before its next request): the writer
    thread commits once a pass. ``loop`` is what ``record_call`` itself held the loop for."""
    with Journal.open(fresh(folder, "passes")) as journal:
        run_id = journal.start_run("batch", "bench", {}, endpoint="bench")
        calls = [Call(Request.text(f"question {n}")) for n in range(WRITES)]
        on_loop = 0.0
        cpu, started = time.process_time(), time.perf_counter()
        for index, call in enumerate(calls):
            before = time.perf_counter()
            journal.record_call(run_id, index, call, OUTCOME, cost=0.001)
            on_loop += time.perf_counter() - before
            if index % per_pass == per_pass - 1:
                await journal.committed()
        await journal.committed()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        return PassCost(wall / WRITES, on_loop / WRITES, cpu / WRITES)


class Forgetful(Model):
    """Answers at once and remembers nothing, so only fanwise's own memory is measured."""

    name = "forgetful"

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        await asyncio.sleep(0)
        return Completion("an answer", Usage(5, 5), "gpt-5")


def lines(count: int) -> Iterator[str]:
    for n in range(count):
        yield json.dumps({"custom_id": f"r{n}", "prompt": f"What about item {n}?"}) + "\n"


async def batch_peak(folder: Path, count: int) -> int:
    """tracemalloc's peak while ``count`` lines run through the engine and the journal."""
    with Journal.open(folder / f"batch{count}.db") as journal:
        run_id = journal.start_run("batch", "bench", {}, endpoint="bench")
        store = JournalStore(journal, run_id, prices=builtin_prices(), endpoint="bench")
        engine = Engine(Forgetful(), concurrency=16, store=store)
        tracemalloc.start()
        await run_batch(lines(count), engine, lambda record: None, defaults=ModelSettings())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return peak


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        sync = min(sqlite_write(folder) for _ in range(ROUNDS))
        threaded = [asyncio.run(aiosqlite_write(folder)) for _ in range(ROUNDS)]
        whole = min(journal_write(folder) for _ in range(ROUNDS))
        print(f"insert + commit, sync sqlite3:  {sync * 1e6:6.1f} µs")
        if None in threaded:
            print("insert + commit, aiosqlite:     not installed (pip install aiosqlite)")
        else:
            best = min(t for t in threaded if t is not None)
            print(f"insert + commit, aiosqlite:     {best * 1e6:6.1f} µs ({best / sync:.1f}x sync)")
        print(
            f"Journal.record_call, in all:    {whole * 1e6:6.1f} µs (no event loop: a commit each)"
        )
        for per_pass in (1, 10, 100):
            rounds = [asyncio.run(journal_write_in_passes(folder, per_pass)) for _ in range(ROUNDS)]
            best = min(rounds, key=lambda cost: cost.wall)
            print(
                f"Journal.record_call, {per_pass:>3} a pass: {best.wall * 1e6:6.1f} µs to commit,"
                f" {best.loop * 1e6:5.1f} µs of it on the event loop, {best.cpu * 1e6:6.1f} µs CPU"
                " (writer thread: one commit a pass)"
            )
        small, big = 2_000, 20_000
        asyncio.run(batch_peak(folder, 200))  # warm-up: imports and caches
        small_peak = asyncio.run(batch_peak(folder, small))
        big_peak = asyncio.run(batch_peak(folder, big))
        print(
            f"batch memory peak: {small:,} lines {small_peak / 1e3:.0f} kB, {big:,} lines "
            f"{big_peak / 1e3:.0f} kB: ratio {big_peak / small_peak:.2f}"
        )


if __name__ == "__main__":
    main()
