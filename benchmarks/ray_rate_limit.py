"""`fanwise batch --engine ray` with default flags against servers at 600 rpm that start empty.

The issue-18 test, as a new user would run it: ``python -m fanwise.simulator --rpm 600`` in its
own process per endpoint, each drained (asked until it answers 429) just before the run, then
``fanwise batch IN.jsonl --engine ray [--endpoints A,B]`` with nothing else but ``-o`` and the
base URL. Ray is started first (``ray.init``, timed on its own: the start-up), then the command
runs in this process (it finds Ray running). With ``--whole`` the command is its own process
instead, which starts Ray itself, and the servers are kept empty until its first call: its
start-up is the time from launch to that call. Reports, per run: calls fulfilled, the share of
requests answered 429, the run's time against the ideal, and how the calls split over the
endpoints. ::

    python benchmarks/ray_rate_limit.py                 # 600 calls, 1 then 2 endpoints, ~2 min
    python benchmarks/ray_rate_limit.py --whole         # as a user runs it, ~2.5 min
    python benchmarks/ray_rate_limit.py -n 300 --endpoints 2
    python benchmarks/ray_rate_limit.py --endpoints 2 --limit-style next-request --burst 1

Issue 24's case is the last: a bucket of one second per endpoint, told in a dialect of
``--limit-style`` (docs/simulator.md); the run then also checks issue 24's targets: every call
fulfilled, 429s at most one window (every worker's ``--concurrency``, 2 x 8) plus 10 % of the
calls, throughput at least 0.9 x the ideal.

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
    startup: float = 0.0  # --whole: from launch to the first call

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    @property
    def run(self) -> float:
        return self.seconds - self.startup


@contextlib.contextmanager
def simulators(count: int, latency: float, *extra: str) -> Iterator[list[str]]:
    """``count`` simulator processes at ``--rpm 600`` (and ``extra`` flags); their base URLs."""
    command = [sys.executable, "-m", "fanwise.simulator", "--port", "0"]
    flags = ["--rpm", str(RPM), "--latency", str(latency), *extra]
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
        # a dialect without OpenAI's header: count a full bucket of one second (the strictest)
        remaining = int(response.headers.get("x-ratelimit-remaining-requests", RPM // 60))
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


def sent(stats: dict[str, Any]) -> int:
    """Requests that carried the run's prompts (the drain's are left out)."""
    return sum(n for prompt, n in stats["attempts"].items() if prompt != "drain")


def command(urls: list[str], source: Path, out: Path) -> list[str]:
    """``fanwise batch`` with default flags but the target and the output."""
    target = ["--endpoints", ",".join(urls)] if len(urls) > 1 else []
    flags = ["--engine", "ray", "--base-url", urls[0], "-o", str(out), "--quiet"]
    return ["batch", str(source), *flags, *target]


async def keep_empty(urls: list[str], process: asyncio.subprocess.Process) -> None:
    """While the command starts, keep every server's bucket empty; return at its first call."""
    body = {"model": "gpt-5-mini", "input": "drain"}
    async with aiohttp.ClientSession() as http:

        async def spend(url: str, count: int) -> None:
            async def one() -> None:
                async with http.post(f"{url}/responses", json=body) as response:
                    await response.read()

            await asyncio.gather(*(one() for _ in range(count)))

        while process.returncode is None:
            views = await asyncio.gather(*(view(http, url) for url in urls))
            if any(sent(stats) for _, stats in views):
                return
            refilled = [(url, remaining) for url, (remaining, _) in zip(urls, views, strict=True)]
            await asyncio.gather(*(spend(url, n) for url, n in refilled if n), asyncio.sleep(0.02))


async def whole_process(urls: list[str], args: list[str]) -> tuple[float, float]:
    """Run the command as its own process; its start-up (until its first call) and its wall."""
    await prepare(urls)
    launched = time.perf_counter()
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "fanwise", *args)
    await keep_empty(urls, process)
    first = time.perf_counter()
    await process.wait()
    return first - launched, time.perf_counter() - launched


def run(urls: list[str], calls: int, latency: float, folder: Path, whole: bool) -> Result:
    from fanwise.cli import cli

    source, out = folder / f"in-{len(urls)}.jsonl", folder / f"out-{len(urls)}.jsonl"
    source.write_text("".join(f'{{"prompt": "q{i}", "custom_id": "c{i}"}}\n' for i in range(calls)))
    args = command(urls, source, out)
    startup = 0.0
    if whole:
        held = 0
        startup, seconds = asyncio.run(whole_process(urls, args))
    else:
        held, _ = asyncio.run(prepare(urls))
        started = time.perf_counter()
        with contextlib.suppress(SystemExit):
            cli.main(args, prog_name="fanwise", standalone_mode=False)
        seconds = time.perf_counter() - started
    after = asyncio.run(statistics(urls))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    fulfilled = sum(
        line["response"] is not None and line["response"]["status_code"] == 200 for line in lines
    )
    split = tuple(sent(stats) for stats in after)
    refused = sum(split) - fulfilled  # the servers inject no fault: every other answer is a 429
    per_second = RPM / 60 * len(urls)
    ideal = max(0, calls - held) / per_second + latency
    return Result(len(urls), calls, fulfilled, sum(split), refused, seconds, ideal, split, startup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--calls", type=int, default=600)
    parser.add_argument("--endpoints", type=int, action="append", help="default: 1, then 2")
    parser.add_argument("--latency", type=float, default=0.2, help="simulator seconds per call")
    parser.add_argument("--limit-style", default="openai", help="the servers' dialect")
    parser.add_argument("--burst", type=float, default=60.0, help="seconds a bucket holds")
    parser.add_argument(
        "--whole", action="store_true", help="run `fanwise batch` as its own process (starts Ray)"
    )
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    os.environ["FANWISE_HOME"] = tempfile.mkdtemp(prefix="fanwise-bench-")
    import ray

    started = time.perf_counter()
    if not args.whole:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    startup = time.perf_counter() - started
    results = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for endpoints in args.endpoints or [1, 2]:
                extra = ["--limit-style", args.limit_style, "--burst", str(args.burst)]
                with simulators(endpoints, args.latency, *extra) as urls:
                    results.append(run(urls, args.calls, args.latency, Path(folder), args.whole))
    finally:
        ray.shutdown()
    where = "each its own process" if args.whole else f"in this process; ray.init {startup:.1f} s"
    print(
        f"fanwise batch --engine ray, {where}; simulators --rpm {RPM} --latency {args.latency:g}"
        f" --limit-style {args.limit_style} --burst {args.burst:g}; load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'endpoints':>9} {'fulfilled':>9} {'requests':>8} {'429s':>5} {'429 %':>6} "
        f"{'start s':>7} {'run s':>7} {'ideal s':>7} {'run/ideal':>9} {'calls/s':>7}  split"
    )
    for r in results:
        print(
            f"{r.endpoints:>9} {r.fulfilled:>5}/{r.calls:<3} {r.requests:>8} {r.refused:>5} "
            f"{r.refused / max(1, r.requests):>6.1%} {r.startup:>7.2f} {r.run:>7.2f} "
            f"{r.ideal:>7.2f} {r.run / r.ideal:>9.2f} {r.calls / r.run:>7.2f}  "
            f"{'/'.join(map(str, r.split))}"
        )
    for r in results:  # issue 24's targets
        bound = 2 * 8 + r.calls // 10
        share = r.ideal / r.run
        print(
            f"{r.endpoints} endpoint(s): {r.fulfilled}/{r.calls} fulfilled "
            f"({'met' if r.fulfilled == r.calls else 'MISSED'}); {r.refused} 429s, bound {bound} "
            f"({'met' if r.refused <= bound else 'MISSED'}); {share:.2f} x the ideal throughput "
            f"({'met' if share >= 0.9 else 'MISSED'})"
        )
    one = results[0]
    for r in results[1:]:
        print(f"{r.endpoints} endpoints: {one.run / r.run:.2f}x the throughput of 1", end="")
        if args.whole:
            print(f", {one.seconds / r.seconds:.2f}x counting each process from its launch")
        else:
            both = (one.seconds + startup) / (r.seconds + startup)
            print(f", {both:.2f}x counting ray.init in each")


if __name__ == "__main__":
    main()
