"""A 429 that shows a limit is back-pressure: the call waits for capacity, its retries untouched.

On a fake clock, through the engine and the adaptive limiter: a limit's 429s do not spend
``--retries`` (``retries=0`` still finishes), an isolated 429 still does, ``max_wait`` ends a call
with a clear ``rate_limited`` rejection, the run's retry budget still counts, a pool of endpoints
and the Ray workers' leased permits carry the verdict too.
"""

from __future__ import annotations

import asyncio

from fanwise import Call, Engine, Fulfilled, Rejected, Request, RetryPolicy
from fanwise.cluster.limits import LeasedLimiter, SharedLimits
from fanwise.endpoints import Endpoint, EndpointPool
from fanwise.limits import build_limiter, is_back_pressure
from fanwise.outcome import RateLimited
from fanwise.retry import MaxWaitExceeded, RetryBudget
from tests.scripted import Reply, ScriptedModel
from tests.test_cluster_limits import FakeTime, Handle

DRY = {
    "x-ratelimit-limit-requests": "600",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "100ms",
}
"""Headers that leave no room: a 429 carrying them is evidence of a limit."""


def limited(wait: float = 0.1) -> Reply:
    return Reply(error=RateLimited("limit", status_code=429, retry_after=wait, headers=DRY))


def noise() -> Reply:
    return Reply(error=RateLimited("busy", status_code=429, retry_after=1.0))


def engine(model: ScriptedModel, time: FakeTime, **retry: float | int | None) -> Engine:
    limiter = build_limiter(adaptive=True, clock=time.clock, sleep=time.sleep)
    policy = RetryPolicy(**retry)  # type: ignore[arg-type]
    return Engine(model, limiter=limiter, retry=policy, clock=time.clock, sleep=time.sleep)


async def test_a_limits_429s_do_not_spend_retries() -> None:
    """With --retries 0, a call refused five times by a limit is still fulfilled, on attempt 6."""
    time, model = FakeTime(), ScriptedModel()
    model.enqueue("q", *(limited() for _ in range(5)))
    [outcome] = await engine(model, time, retries=0).run([Call(Request.text("q"))])
    assert isinstance(outcome, Fulfilled)
    assert len(outcome.attempts) == 6  # every attempt is still on the timeline
    assert [a.error["kind"] for a in outcome.attempts[:5] if a.error] == ["rate_limited"] * 5
    assert time.now >= 0.5  # each refusal held the next permit for its Retry-After


async def test_an_isolated_429_still_counts_as_an_attempt() -> None:
    """A 429 that shows no limit (no headers, a round 1 s wait) is noise: --retries 0 ends it."""
    time, model = FakeTime(), ScriptedModel()
    model.enqueue("q", noise())
    [outcome] = await engine(model, time, retries=0).run([Call(Request.text("q"))])
    assert isinstance(outcome, Rejected) and len(outcome.attempts) == 1
    assert isinstance(outcome.error, RateLimited)


async def test_max_wait_ends_a_call_with_a_clear_rate_limited_rejection() -> None:
    """A limit that refuses for ever (Retry-After 30 s) ends the call once 100 s have passed."""
    time, model = FakeTime(), ScriptedModel()
    model.enqueue("q", *(limited(30.0) for _ in range(50)))
    [outcome] = await engine(model, time, retries=0, max_wait=100.0).run([Call(Request.text("q"))])
    assert isinstance(outcome, Rejected) and isinstance(outcome.error, MaxWaitExceeded)
    assert outcome.error.kind == "rate_limited" and outcome.error.code == "max_wait_exceeded"
    assert "--max-wait" in outcome.error.message and "waited 120 s" in outcome.error.message
    assert time.now == 120.0  # the first check past 100 s: four holds of 30 s
    assert len(outcome.attempts) == 5


async def test_the_runs_retry_budget_still_ends_back_pressure() -> None:
    """--retry-budget 2 allows two back-pressure retries in the whole run, then the 429 stands."""
    time, model = FakeTime(), ScriptedModel()
    model.enqueue("q", *(limited() for _ in range(5)))
    run = engine(model, time, retries=0)
    run.dispatch.retry_budget = RetryBudget(2)  # type: ignore[attr-defined]
    [outcome] = await run.run([Call(Request.text("q"))])
    assert isinstance(outcome, Rejected) and len(outcome.attempts) == 3


async def test_a_pool_of_endpoints_marks_a_limits_429_as_back_pressure() -> None:
    """Through EndpointPool, the endpoint's own limiter judges the 429: back-pressure."""
    model = ScriptedModel()
    model.enqueue("q", limited(0.01), limited(0.01))
    ends = [Endpoint(url, model, build_limiter(adaptive=True)) for url in ("a", "b")]
    pool = EndpointPool(ends)
    run = Engine(pool, limiter=pool, retry=RetryPolicy(retries=0))
    [outcome] = await run.run([Call(Request.text("q"))])
    assert isinstance(outcome, Fulfilled) and len(outcome.attempts) == 3


async def test_a_ray_workers_429_takes_the_shared_limiters_verdict() -> None:
    """A leased permit's 429 is judged by the actor's limits: a limit's is marked, noise not."""
    time = FakeTime()
    build = lambda: build_limiter(adaptive=True, clock=time.clock, sleep=time.sleep)  # noqa: E731
    shared = Handle(SharedLimits({"run": build}, sleep=time.sleep))
    worker = LeasedLimiter(shared, "a")
    seen = []
    for error in (limited().error, noise().error):
        assert error is not None
        try:
            async with worker.permit(10):
                raise error
        except RateLimited as exc:
            seen.append(is_back_pressure(exc))
    await worker.aclose()
    assert seen == [True, False]


async def test_a_max_wait_while_waiting_for_a_permit_is_a_rejection_too() -> None:
    """A hold longer than what is left of max_wait (real clock, 0.2 s) ends the wait at 0.2 s."""
    model = ScriptedModel()
    model.enqueue("q", limited(1000.0))
    run = Engine(
        model,
        limiter=build_limiter(adaptive=True),
        retry=RetryPolicy(retries=3, max_wait=0.2),
    )
    started = asyncio.get_running_loop().time()
    [outcome] = await run.run([Call(Request.text("q"))])
    assert asyncio.get_running_loop().time() - started < 5.0
    assert isinstance(outcome, Rejected) and isinstance(outcome.error, MaxWaitExceeded)
    assert outcome.error.code == "max_wait_exceeded" and "waited 0.2 s" in outcome.error.message
    assert len(outcome.attempts) == 2  # the 429, then the wait for a permit that never came
