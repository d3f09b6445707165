"""The shared limits of ``--engine ray`` and the workers' leases, in one event loop, without Ray.

``Handle`` stands in for a Ray actor handle (``handle.method.remote(...)`` starts the call and
returns an awaitable), so these tests run in every ``make test``; tests/test_ray_engine.py runs
the same classes across real Ray processes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from fanwise.cluster.limits import LeasedLimiter, SharedLimits, leased_member
from fanwise.limits import AdaptiveConcurrency, Limits, Unlimited, build_limiter
from fanwise.outcome import RateLimited

ONE, TWO = "endpoint-0", "endpoint-1"


class Handle:
    """An actor handle for an object in this loop; counts the calls made to each method."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.calls: Counter[str] = Counter()
        self.at_once: Counter[str] = Counter()  # the most calls of each method in flight
        self._in_flight: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method: Callable[..., Awaitable[Any]] = getattr(self.target, name)
        handle = self

        async def call(*args: Any) -> Any:
            handle._in_flight[name] += 1
            handle.at_once[name] = max(handle.at_once[name], handle._in_flight[name])
            try:
                return await method(*args)
            finally:
                handle._in_flight[name] -= 1

        class Method:
            @staticmethod
            def remote(*args: Any) -> asyncio.Future[Any]:
                handle.calls[name] += 1
                return asyncio.ensure_future(call(*args))

        return Method


class FakeTime:
    """A clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def adaptive(time: FakeTime) -> Callable[[], Limits | Unlimited]:
    return partial(build_limiter, adaptive=True, clock=time.clock, sleep=time.sleep)


async def test_a_429_one_worker_sees_holds_every_workers_next_permit() -> None:
    """Worker a's 429 with Retry-After 30 s reaches the actor; worker b's next permit waits 30 s."""
    time = FakeTime()
    shared = Handle(SharedLimits({"run": adaptive(time)}, sleep=time.sleep))
    a, b = LeasedLimiter(shared, "a"), LeasedLimiter(shared, "b")
    refused = RateLimited("slow down", status_code=429, retry_after=30, headers={"x-other": "1"})
    try:
        async with a.permit(10):
            raise refused
    except RateLimited:
        pass
    await a.flush()
    async with b.permit(10):
        assert time.now >= 30
    await b.aclose()
    assert shared.target.held() == 0


async def test_rate_limit_headers_one_worker_sees_pace_every_worker() -> None:
    """A's answer reports 0 requests left of 600 a minute: b's permit waits for one to refill."""
    time = FakeTime()
    shared = Handle(SharedLimits({"run": adaptive(time)}, sleep=time.sleep))
    a, b = LeasedLimiter(shared, "a"), LeasedLimiter(shared, "b")
    async with a.permit(10) as permit:
        report = {"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "0"}
        permit.record(tokens=12, headers={**report, "content-type": "application/json"})
    await a.flush()
    async with b.permit(10):
        assert 0.09 < time.now < 0.2  # 1 request at 10 a second
    await b.aclose()


async def test_one_lease_serves_every_attempt_waiting_and_endings_go_back_in_batches() -> None:
    """Forty attempts waiting at once take their permits in one round trip, not forty."""
    shared = Handle(SharedLimits({"run": partial(build_limiter, rpm=1_000_000)}))
    worker = LeasedLimiter(shared, "w")

    async def attempt() -> None:
        async with worker.permit(10) as permit:
            await asyncio.sleep(0)
            permit.record(tokens=12, headers={})

    async with asyncio.TaskGroup() as group:
        for _ in range(40):
            group.create_task(attempt())
    await worker.aclose()
    assert shared.calls["lease"] == 1
    assert shared.calls["finish"] < 10
    assert shared.target.held() == 0


async def test_where_the_limits_pace_a_worker_keeps_several_leases_waiting_at_the_actor() -> None:
    """At 600 rpm a lease brings one permit at a time: the next calls already wait there."""
    time = FakeTime()
    build = partial(build_limiter, rpm=600, clock=time.clock, sleep=time.sleep)
    shared = Handle(SharedLimits({"run": build}, sleep=time.sleep))
    worker = LeasedLimiter(shared, "w")

    async def attempt() -> None:
        async with worker.permit(10):
            pass

    async with asyncio.TaskGroup() as group:
        for _ in range(30):
            group.create_task(attempt())
    await worker.aclose()
    assert shared.at_once["lease"] > 1
    assert 1.9 < time.now < 2.2  # 10 at once (the burst), then 10 a second


async def test_a_steady_worker_leases_ahead_and_hands_back_what_it_did_not_use() -> None:
    """At 1,000 permits a second a worker takes dozens per lease; its spares go back at close."""
    time = FakeTime()
    shared = Handle(SharedLimits({"run": partial(build_limiter, rpm=1_000_000)}))
    worker = LeasedLimiter(shared, "w", clock=time.clock)
    for _ in range(2000):
        time.now += 0.001
        async with worker.permit(10):
            pass
    assert worker.ahead() >= 40  # 50 ms of its rate, the rate averaged over the last second
    assert worker.leases < 200  # a tenth of the permits, counting the ramp up
    assert shared.target.held() > 0  # spares in hand
    await worker.aclose()
    assert shared.target.held() == 0


async def test_the_actor_picks_the_endpoint_least_loaded_over_every_worker() -> None:
    """Worker a holds a permit on endpoint 0: worker b's goes to endpoint 1, unlike a local pick."""
    shared = Handle(SharedLimits({ONE: Unlimited, TWO: Unlimited}))
    a, b = LeasedLimiter(shared, "a"), LeasedLimiter(shared, "b")
    async with a.permit(10):
        assert leased_member() == 0
        async with b.permit(10):
            assert leased_member() == 1
            assert shared.target.loads() == [1, 1]
    for worker in (a, b):
        await worker.aclose()
    assert shared.target.loads() == [0, 0]


async def test_an_endpoint_held_by_a_429_is_passed_over_by_every_worker() -> None:
    """After a 429 on endpoint 0 (Retry-After 30 s), b's permits go to endpoint 1 at once."""
    time = FakeTime()
    shared = Handle(SharedLimits({ONE: adaptive(time), TWO: adaptive(time)}, sleep=time.sleep))
    a, b = LeasedLimiter(shared, "a"), LeasedLimiter(shared, "b")
    try:
        async with a.permit(10):
            assert leased_member() == 0
            raise RateLimited("slow down", status_code=429, retry_after=30)
    except RateLimited:
        pass
    await a.flush()
    for _ in range(3):
        async with b.permit(10):
            assert leased_member() == 1
    assert time.now == 0
    await b.aclose()


async def test_a_dead_workers_permits_are_handed_back() -> None:
    """release_worker returns the permits a worker still held, so no slot leaks."""
    shared = SharedLimits({"run": partial(Limits, AdaptiveConcurrency(1, maximum=1))})
    await shared.lease("w1", [10])
    assert shared.held() == 1
    assert await shared.release_worker("w1") == 1
    [(ticket, member)] = await asyncio.wait_for(shared.lease("w2", [10, 10]), 1)
    await shared.finish([(ticket, 10, {}, None)])
    assert (member, shared.held()) == (0, 0)


async def test_an_attempt_cancelled_while_waiting_leaks_no_permit() -> None:
    """One slot: b waits for it and is cancelled; the permit granted later goes back at close."""
    shared = Handle(SharedLimits({"run": partial(Limits, AdaptiveConcurrency(1, maximum=1))}))
    a, b = LeasedLimiter(shared, "a"), LeasedLimiter(shared, "b")
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with a.permit(10):
            holding.set()
            await release.wait()

    async def wait_in_vain() -> None:
        async with b.permit(10):
            raise AssertionError("cancelled before its permit")

    holder = asyncio.create_task(hold())
    await holding.wait()
    waiter = asyncio.create_task(wait_in_vain())
    await asyncio.sleep(0.01)
    waiter.cancel()
    release.set()
    await holder
    await a.flush()
    await asyncio.sleep(0.01)  # the actor grants b's lease, which finds no one waiting
    for worker in (a, b):
        await worker.aclose()
    assert shared.target.held() == 0


async def test_a_dead_workers_permits_are_not_failures_of_their_endpoint() -> None:
    """Three permits handed back for a dead worker do not count toward resting the endpoint."""
    shared = SharedLimits({ONE: Unlimited, TWO: Unlimited})
    await shared.lease("w1", [10, 10, 10, 10, 10, 10])
    assert await shared.release_worker("w1") == 6
    assert [endpoint.failures for endpoint in shared.pool.endpoints] == [0, 0]
