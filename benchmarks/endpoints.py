"""Throughput over 1 endpoint against 4, each held to 600 requests a minute.

Starts ``python -m fanwise.simulator --rpm 600`` processes (one per endpoint) and sends the same
calls through the engine, paced as ``fanwise batch --endpoints A,B,C,D --rpm 600`` paces them:
each endpoint under its own 600 rpm bucket (a burst of one second, 10 calls, then 10 a second)
plus the adaptive limits. The ideal is ``(N - 10 * endpoints) / (10 * endpoints)`` seconds (the
first second's burst is free) plus one latency, so the ideal ratio of throughputs is a little
over the ratio of endpoints (4.41 for 300 calls). ::

    python benchmarks/endpoints.py                 # 1 vs 4 endpoints in one process, ~45 s
    python benchmarks/endpoints.py --ray           # also --engine ray: 2 workers over the 4
    python benchmarks/endpoints.py -n 600 --latency 0.3

Ray needs the extra (``pip install 'fanwise[ray]'``). Its start-up is not timed: ``ray.init``,
nor the worker and limiter actors each run starts (printed apart); the Ray row is timed from its
first call's start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

from fanwise import Call, Engine, Request, RetryPolicy
from fanwise.endpoints import Endpoint, EndpointPool
from fanwise.limits import build_limiter
from fanwise.models.fast import FastOpenAIModel

RPM = 600
SIMULATOR = (sys.executable, "-m", "fanwise.simulator", "--port", "0")


@dataclass(frozen=True)
class Figures:
    name: str
    endpoints: int
    calls: int
    seconds: float
    refused: int  # 429s the servers sent

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def ideal(self, latency: float) -> float:
        per_second = RPM / 60 * self.endpoints
        return max(0.0, self.calls - per_second) / per_second + latency  # one second's burst


@contextlib.contextmanager
def simulators(count: int, latency: float) -> Iterator[list[str]]:
    """``count`` simulator processes at ``--rpm 600``; their base URLs."""
    processes = [
        subprocess.Popen(
            [*SIMULATOR, "--rpm", str(RPM), "--latency", str(latency)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        urls = []
        for process in processes:
            assert process.stdout is not None
            urls.append(process.stdout.readline().split()[-1])
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def refused(url: str) -> int:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/_stats", timeout=10) as response:
        stats = json.load(response)
    return int(stats["by_status"].get("429", 0))


def calls(count: int) -> list[Call]:
    return [Call(Request.text(f"question {i}", model="gpt-5-mini")) for i in range(count)]


def pool(urls: list[str]) -> EndpointPool:
    return EndpointPool(
        [
            Endpoint(
                url,
                FastOpenAIModel(api_key="test", base_url=url),
                build_limiter(rpm=RPM, adaptive=True),
            )
            for url in urls
        ]
    )


async def in_process(urls: list[str], count: int, concurrency: int) -> float:
    spread = pool(urls)
    engine = Engine(spread, limiter=spread, concurrency=concurrency, retry=RetryPolicy(retries=5))
    try:
        started = time.perf_counter()
        outcomes = await engine.run(calls(count))
        seconds = time.perf_counter() - started
    finally:
        await spread.aclose()
    assert all(o.ok for o in outcomes), "a call failed"
    return seconds


async def on_ray(
    urls: list[str], count: int, concurrency: int, workers: int
) -> tuple[float, float]:
    """The run's start-up (its actors) and the seconds from its first call to its end."""
    import ray

    from fanwise.cluster import RayDispatch, WorkerPlan
    from fanwise.cluster.models import OpenAIModels
    from fanwise.cluster.worker import endpoint_limiter
    from fanwise.events import CallStarted, Event

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    plan = WorkerPlan(
        OpenAIModels(), endpoints=tuple(urls), concurrency=concurrency, retry=RetryPolicy(5)
    )
    limit = partial(build_limiter, rpm=RPM, adaptive=True)
    limits = {endpoint_limiter(n): limit for n in range(len(urls))}
    driver = FastOpenAIModel(api_key="test", base_url=urls[0])
    first: list[float] = []

    def observe(event: Event) -> None:
        if isinstance(event, CallStarted) and not first:
            first.append(time.perf_counter())

    fleet = RayDispatch(plan=plan, limits=limits, workers=workers, actor_options={"num_cpus": 0.5})
    engine = Engine(driver, dispatch=fleet, observer=observe)
    try:
        started = time.perf_counter()
        outcomes = await engine.run(calls(count))
        ended = time.perf_counter()
    finally:
        await driver.aclose()
    assert all(o.ok for o in outcomes), "a call failed"
    return first[0] - started, ended - first[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--calls", type=int, default=300)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1, help="simulator seconds per call")
    parser.add_argument("--ray", action="store_true", help="also run --engine ray, 2 workers")
    args = parser.parse_args()
    results: list[Figures] = []
    startup = 0.0
    runs = [("1 endpoint", 1, "local"), ("4 endpoints", 4, "local")]
    if args.ray:
        runs.append(("4 endpoints, ray 2 workers", 4, "ray"))
    for name, count, where in runs:
        with simulators(count, args.latency) as urls:
            if where == "ray":
                work = on_ray(urls, args.calls, args.concurrency // 2, workers=2)
                startup, seconds = asyncio.run(work)
            else:
                seconds = asyncio.run(in_process(urls, args.calls, args.concurrency))
            results.append(Figures(name, count, args.calls, seconds, sum(map(refused, urls))))
    print(f"{args.calls} calls, latency {args.latency:g} s, each endpoint at {RPM} rpm")
    print(f"{'':28} {'seconds':>8} {'calls/s':>8} {'ideal s':>8} {'429s':>5}")
    for r in results:
        ideal = r.ideal(args.latency)
        print(f"{r.name:28} {r.seconds:8.2f} {r.rate:8.1f} {ideal:8.2f} {r.refused:5d}")
    if args.ray:
        print(f"(the Ray run's actors took {startup:.2f} s to start before its first call)")
    one = results[0]
    for r in results[1:]:
        ideal = one.ideal(args.latency) / r.ideal(args.latency)
        print(
            f"{r.name}: {r.rate / one.rate:.2f}x the throughput of 1 endpoint (ideal {ideal:.2f}x)"
        )


if __name__ == "__main__":
    main()
