"""fanwise's own time in a Batch API round trip: pack, upload, poll, download, map, journal.

The simulator runs in a separate process on a clock so fast that its batches end at once
(``--batch-speed 1e9``), so what is left is fanwise's work (and the simulator's, which answers
every line): writing the input files, reading the result files back onto the calls by
``custom_id``, and one journal row per call. ::

    python benchmarks/batch_api.py                 # 20,000 calls, files of 5,000: ~1 minute
    python benchmarks/batch_api.py -n 50000 --per-file 50000
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fanwise import Call, Request
from fanwise.batchapi import BatchAPI, BatchClient, BatchLimits, JournalLedger, Polling
from fanwise.engine import Engine
from fanwise.journal import Journal, JournalStore
from fanwise.models.openai import OpenAIModel
from fanwise.prices import PriceTable


async def round_trip(url: str, count: int, per_file: int, journal_path: Path) -> float:
    model = OpenAIModel(api_key="test", base_url=url)
    calls = [Call(Request.text(f"question {i}", model="gpt-5-mini")) for i in range(count)]
    with Journal.open(journal_path) as journal:
        run_id = journal.start_run("batch", "bench", {}, endpoint="sim")
        engine = Engine(
            model, store=JournalStore(journal, run_id, prices=PriceTable(), endpoint="sim")
        )
        engine.dispatch = BatchAPI(
            BatchClient(model.client),
            engine.live,
            limits=BatchLimits(max_requests=per_file),
            polling=Polling(first=0.05, most=0.2),
            ledger=JournalLedger(journal, run_id),
        )
        try:
            started = time.perf_counter()
            outcomes = await engine.run(calls, keep=False)
            seconds = time.perf_counter() - started
        finally:
            await model.aclose()
        assert journal.totals(run_id).fulfilled == count, "a call failed"
    assert outcomes == []
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--calls", type=int, default=20_000)
    parser.add_argument("--per-file", type=int, default=5_000)
    args = parser.parse_args()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "fanwise.simulator", "--port", "0", "--batch-speed", "1e9"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert simulator.stdout is not None
        url = simulator.stdout.readline().split()[-1]
        with tempfile.TemporaryDirectory() as folder:
            seconds = asyncio.run(
                round_trip(url, args.calls, args.per_file, Path(folder) / "journal.db")
            )
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    files = -(-args.calls // args.per_file)
    print(f"{args.calls:,} calls in {files} batch files: {seconds:.1f} s round trip")
    print(f"{args.calls / seconds:,.0f} calls/s, simulator's answering included")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"fanwise's peak memory: {peak:,.0f} MB (the simulator's not included)")


if __name__ == "__main__":
    main()
