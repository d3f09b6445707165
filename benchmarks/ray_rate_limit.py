"""`fanwise batch --engine ray` with default flags against servers at 600 rpm that start empty.

The issue-18 test, as a new user would run it: ``python -m fanwise.simulator --rpm 600`` in its
own process per endpoint, each drained (asked until it answers 429) just before the run, then
``fanwise batch IN.jsonl --engine ray [--endpoints A,B]`` with nothing else but ``-o`` and the
base URL. Ray is started first (``ray.init``, timed on its own: the start-up), then the command
runs in this process (it finds Ray running). Reports, per run: calls fulfilled, the share of
requests answered 429, the command's wall time against the ideal, and how the calls split over
the endpoints. ::

    python benchmarks/ray_rate_limit.py                 # 600 calls, 1 then 2 endpoints, ~2.5 min
    python benchmarks/ray_rate_limit.py -n 300 --endpoints 2

The ideal: each server refills at 10 requests a second and holds ``B`` (what refilled between the
drain and the run, read from ``GET /v1/models``, which spends nothing), so ``N`` calls over ``E``
endpoints take at least ``(N - B) / (10 E)`` seconds plus one latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

RPM = 600


@dataclass(frozen=True)
class Result:
    endpoints: int
    calls: int
    fulfilled: int
    requests: int
    refused: int
    seconds: float
    ideal: float
    split: tuple[int, ...]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


@contextlib.contextmanager
def simulators(count: int, latency: float) -> Iterator[list[str]]:
    """``count`` simulator processes at ``--rpm 600``; their base URLs."""
    command = [sys.executable, "-m", "fanwise.simulator", "--port", "0"]
    flags = ["--rpm", str(RPM), "--latency", str(latency)]
    processes = [
        subprocess.Popen([*command, *flags], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        urls = []
        for process in processes:
            assert process.stdout is not None
            urls.append(process.stdout.readline().decode().split()[-1])
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


async def drain(http: aiohttp.ClientSession, url: str) -> None:
    """Spend the server's request bucket: ask 50 at a time until it answers 429."""
    body = {"model": "gpt-5-mini", "input": "drain"}

    async def post() -> int:
        async with http.post(f"{url}/responses", json=body) as response:
            await response.read()
            return response.status

    while 429 not in await asyncio.gather(*(post() for _ in range(50))):
        pass


async def view(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    """The requests the server would take now (spending nothing), and its statistics."""
    async with http.get(f"{url}/models") as response:
        remaining = int(response.headers["x-ratelimit-remaining-requests"])
    async with http.get(f"{url.removesuffix('/v1')}/_stats") as response:
        return remaining, await response.json()


async def prepare(urls: list[str]) -> tuple[int, list[dict[str, Any]]]:
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(drain(http, url) for url in urls))
        views = await asyncio.gather(*(view(http, url) for url in urls))
    return sum(remaining for remaining, _ in views), [stats for _, stats in views]


async def statistics(urls: list[str]) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        return [stats for _, stats in await asyncio.gather(*(view(http, url) for url in urls))]


def count(stats: dict[str, Any], key: str) -> int:
    return int(stats["by_status"].get(key, 0))


def run(urls: list[str], calls: int, latency: float, folder: Path) -> Result:
    from fanwise.cli import cli

    source, out = folder / f"in-{len(urls)}.jsonl", folder / f"out-{len(urls)}.jsonl"
    source.write_text("".join(f'{{"prompt": "q{i}", "custom_id": "c{i}"}}\n' for i in range(calls)))
    target = ["--endpoints", ",".join(urls)] if len(urls) > 1 else []
    args = [
        "batch",
        str(source),
        "--engine",
        "ray",
        "--base-url",
        urls[0],
        "-o",
        str(out),
        "--quiet",
    ]
    held, before = asyncio.run(prepare(urls))
    started = time.perf_counter()
    with contextlib.suppress(SystemExit):
        cli.main([*args, *target], prog_name="fanwise", standalone_mode=False)
    seconds = time.perf_counter() - started
    after = asyncio.run(statistics(urls))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    fulfilled = sum(
        line["response"] is not None and line["response"]["status_code"] == 200 for line in lines
    )
    split = tuple(a["requests"] - b["requests"] for a, b in zip(after, before, strict=True))
    refused = sum(count(a, "429") - count(b, "429") for a, b in zip(after, before, strict=True))
    per_second = RPM / 60 * len(urls)
    ideal = max(0, calls - held) / per_second + latency
    return Result(len(urls), calls, fulfilled, sum(split), refused, seconds, ideal, split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--calls", type=int, default=600)
    parser.add_argument("--endpoints", type=int, action="append", help="default: 1, then 2")
    parser.add_argument("--latency", type=float, default=0.2, help="simulator seconds per call")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    os.environ["FANWISE_HOME"] = tempfile.mkdtemp(prefix="fanwise-bench-")
    import ray

    started = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    startup = time.perf_counter() - started
    results = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for endpoints in args.endpoints or [1, 2]:
                with simulators(endpoints, args.latency) as urls:
                    results.append(run(urls, args.calls, args.latency, Path(folder)))
    finally:
        ray.shutdown()
    print(
        f"Ray start-up (ray.init): {startup:.1f} s; "
        f"simulators --rpm {RPM} --latency {args.latency:g}"
    )
    print(
        f"{'endpoints':>9} {'fulfilled':>9} {'requests':>8} {'429s':>5} {'429 %':>6} "
        f"{'wall s':>7} {'ideal s':>7} {'wall/ideal':>10} {'calls/s':>7}  split"
    )
    for r in results:
        print(
            f"{r.endpoints:>9} {r.fulfilled:>5}/{r.calls:<3} {r.requests:>8} {r.refused:>5} "
            f"{r.refused / max(1, r.requests):>6.1%} {r.seconds:>7.2f} {r.ideal:>7.2f} "
            f"{r.seconds / r.ideal:>10.2f} {r.rate:>7.2f}  {'/'.join(map(str, r.split))}"
        )
    if len(results) > 1:
        one = results[0]
        for r in results[1:]:
            whole = (one.seconds + startup) / (r.seconds + startup)
            print(
                f"{r.endpoints} endpoints: {r.rate / one.rate:.2f}x the throughput of 1 "
                f"({whole:.2f}x counting Ray's start-up in each)"
            )


if __name__ == "__main__":
    main()
