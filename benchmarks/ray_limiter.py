"""How many permits a second one shared limiter actor grants under --engine ray (needs the extra).

A Ray worker's attempts take their permits from the ``SharedLimits`` actor through a
``LeasedLimiter``: in leases (every attempt waiting, plus what the worker used in the last 50 ms)
and hand them back in batches. This measures it on a local Ray (2 CPUs): the mean time of one
permit taken and returned, one after another, and the permits a second the one actor grants to
``--workers`` leased limiters with ``-c`` attempts each at once, with two kinds of limits in
the actor: ``none`` (the actor's bookkeeping alone) and ``limits`` (an rpm bucket and the
adaptive pair, header pacing and AIMD, set high enough not to bind). ::

    python benchmarks/ray_limiter.py            # ~30 s, a third of it Ray's start
    python benchmarks/ray_limiter.py -n 50000 -c 200 --workers 4
"""

from __future__ import annotations

import argparse
import asyncio
import time
from functools import partial
from typing import Any

import ray

from fanwise.cluster.limits import LeasedLimiter, LimiterFactory, SharedLimits
from fanwise.cluster.worker import RUN_LIMITER
from fanwise.limits import Unlimited, build_limiter

LIMITS: dict[str, LimiterFactory] = {
    "none": Unlimited,
    "limits": partial(build_limiter, rpm=100_000_000, adaptive=True),
}


async def one_after_another(limiter: LeasedLimiter, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        async with limiter.permit(100) as permit:
            permit.record(tokens=120, headers={})
    return (time.perf_counter() - started) / count


async def many_at_once(limiters: list[LeasedLimiter], count: int, concurrency: int) -> float:
    async def caller(limiter: LeasedLimiter, permits: int) -> None:
        for _ in range(permits):
            async with limiter.permit(100) as permit:
                await asyncio.sleep(0)  # the call
                permit.record(tokens=120, headers={})

    each = count // (len(limiters) * concurrency)
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for limiter in limiters:
            for _ in range(concurrency):
                group.create_task(caller(limiter, each))
    for limiter in limiters:
        await limiter.flush()
    return each * len(limiters) * concurrency / (time.perf_counter() - started)


async def measure(kind: str, count: int, concurrency: int, workers: int) -> tuple[float, float]:
    actor: Any = ray.remote(SharedLimits).options(num_cpus=0).remote({RUN_LIMITER: LIMITS[kind]})
    limiters = [LeasedLimiter(actor, f"bench-{n}") for n in range(workers)]
    await one_after_another(limiters[0], 100)  # warm up
    latency = await one_after_another(limiters[0], min(2000, count // 10))
    rate = await many_at_once(limiters, count, concurrency)
    for limiter in limiters:
        await limiter.aclose()
    held = await actor.held.remote()
    assert held == 0, f"{held} permits not handed back"
    ray.kill(actor)
    return latency, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--permits", type=int, default=20000)
    parser.add_argument("-c", "--concurrency", type=int, default=100, help="per worker")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for kind in LIMITS:
            latency, rate = asyncio.run(measure(kind, args.permits, args.concurrency, args.workers))
            print(
                f"{kind:>6}: one permit after another {latency * 1e6:,.0f} us each; "
                f"{args.workers} workers x {args.concurrency} callers: {rate:,.0f} permits/s",
                flush=True,
            )
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
