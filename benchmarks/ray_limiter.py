"""What a permit from the shared limiter actor costs under --engine ray (needs the ray extra).

Each attempt of a Ray worker asks the ``SharedLimits`` actor for a permit and hands it back: two
round trips. This measures them on a local Ray (2 CPUs): the mean time of one permit taken and
returned, one at a time, and the permits a second the actor grants to many callers at once. ::

    python benchmarks/ray_limiter.py            # ~15 s, most of it Ray's start
    python benchmarks/ray_limiter.py -n 5000 -c 200
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import ray

from fanwise.cluster.limits import RemoteLimiter, SharedLimits
from fanwise.cluster.worker import RUN_LIMITER
from fanwise.limits import build_limiter


async def one_at_a_time(limiter: RemoteLimiter, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        async with limiter.permit(100) as permit:
            permit.record(tokens=120, headers={})
    return (time.perf_counter() - started) / count


async def many_at_once(limiter: RemoteLimiter, count: int, concurrency: int) -> float:
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots, limiter.permit(100) as permit:
            permit.record(tokens=120, headers={})

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(count):
            group.create_task(one())
    return count / (time.perf_counter() - started)


async def measure(count: int, concurrency: int) -> tuple[float, float]:
    actor: Any = ray.remote(SharedLimits).remote({RUN_LIMITER: build_limiter})  # no limits
    limiter = RemoteLimiter(actor, RUN_LIMITER, "bench")
    await one_at_a_time(limiter, 50)  # warm up
    latency = await one_at_a_time(limiter, count // 4)
    rate = await many_at_once(limiter, count, concurrency)
    return latency, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--permits", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=100)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    latency, rate = asyncio.run(measure(args.permits, args.concurrency))
    print(f"one permit, taken and returned, one at a time: {latency * 1000:.2f} ms")
    print(f"{args.concurrency} callers at once: {rate:,.0f} permits/s")


if __name__ == "__main__":
    main()
