"""What writing each outcome to the journal costs, and whether a batch's memory stays flat.

One command, ``python benchmarks/journal_write.py``, prints:

1. The insert and commit of one call row (WAL, ``synchronous=NORMAL``, the same pre-serialised
   row) through sync ``sqlite3`` and through ``aiosqlite`` (which hands each statement to its
   thread), and their ratio; then the whole ``Journal.record_call`` (JSON and redaction
   included). Best of three rounds of 2,000 writes each.
2. The tracemalloc peak of ``run_batch`` with the journal for N lines and 10 N lines, with a
   model that keeps nothing: a ratio near 1 means the input is streamed, not held.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from fanwise import Call, Completion, Engine, Fulfilled, Request, Usage
from fanwise.batch import run_batch
from fanwise.journal import Journal, JournalStore
from fanwise.models.base import DeltaSink, Model
from fanwise.prices import builtin_prices
from fanwise.workflow import ModelSettings

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
    with Journal.open(fresh(folder, "journal")) as journal:
        run_id = journal.start_run("batch", "bench", {}, endpoint="bench")
        calls = [Call(Request.text(f"question {n}")) for n in range(WRITES)]
        started = time.perf_counter()
        for index, call in enumerate(calls):
            journal.record_call(run_id, index, call, OUTCOME, cost=0.001)
        return (time.perf_counter() - started) / WRITES


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
        print(f"Journal.record_call, in all:    {whole * 1e6:6.1f} µs")
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
