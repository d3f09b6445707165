"""The settle semantics: order, partial failure, cancellation of siblings, timeouts, deadline."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar, cast

import pytest

from fanwise import ErrorKind, Fulfilled, Rejected, as_settled, gather_all, settle
from fanwise.outcome import CallTimeout, Cancelled

T = TypeVar("T")


async def value_after(delay: float, value: T) -> T:
    await asyncio.sleep(delay)
    return value


async def fail_after(delay: float, error: Exception) -> str:
    await asyncio.sleep(delay)
    raise error


class Spy:
    """Records how many tasks run at once, and which ones were cancelled or finished."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.cancelled: set[str] = set()
        self.finished: set[str] = set()

    def task(
        self, name: str, delay: float, error: Exception | None = None
    ) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                await asyncio.sleep(delay)
                if error is not None:
                    raise error
                self.finished.add(name)
                return name
            except asyncio.CancelledError:
                self.cancelled.add(name)
                raise
            finally:
                self.running -= 1

        return run


async def test_outcomes_come_back_in_input_order_not_completion_order() -> None:
    """The slowest task is first in the input and first in the result, like allSettled."""
    outcomes = await settle([value_after(0.03, "slow"), value_after(0.0, "fast")])
    assert [o.value for o in outcomes if isinstance(o, Fulfilled)] == ["slow", "fast"]


async def test_a_failure_keeps_every_other_answer() -> None:
    """One rejection does not discard the fulfilled siblings."""
    outcomes = await settle(
        [value_after(0, "a"), fail_after(0, ValueError("boom")), value_after(0, "c")]
    )
    assert [o.status for o in outcomes] == ["fulfilled", "rejected", "fulfilled"]
    rejected = outcomes[1]
    assert isinstance(rejected, Rejected)
    assert isinstance(rejected.error, ValueError)
    assert rejected.kind is ErrorKind.EXCEPTION
    assert not is_retryable_kind(rejected)


def is_retryable_kind(outcome: Rejected) -> bool:
    return outcome.to_dict()["error"]["retryable"] is True


async def test_outcomes_are_pattern_matchable_and_json_serialisable() -> None:
    """Outcomes match with `case` and dump to JSON with their status, value or error kind."""
    outcomes = await settle([value_after(0, "x"), fail_after(0, CallTimeout("slow"))])
    seen = []
    for outcome in outcomes:
        match outcome:
            case Fulfilled(value=value):
                seen.append(("ok", value))
            case Rejected(error=error):
                seen.append(("failed", type(error).__name__))
    assert seen == [("ok", "x"), ("failed", "CallTimeout")]
    dumped = json.loads(json.dumps([o.to_dict() for o in outcomes]))
    assert dumped[0]["status"] == "fulfilled" and dumped[0]["value"] == "x"
    assert dumped[1]["error"]["kind"] == "timeout" and dumped[1]["error"]["retryable"] is True


async def test_limit_caps_the_number_of_tasks_running_at_once() -> None:
    """With limit=3, a spy never sees more than three tasks running together."""
    spy = Spy()
    outcomes = await settle([spy.task(f"t{i}", 0.005) for i in range(12)], limit=3)
    assert spy.peak == 3
    assert all(isinstance(o, Fulfilled) for o in outcomes)


async def test_factories_are_not_started_before_a_slot_is_free() -> None:
    """A factory is called only when its turn comes, so long inputs stay lazy."""
    started: list[int] = []

    def factory(i: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            started.append(i)
            await asyncio.sleep(0.01)
            return i

        return run

    def tasks() -> object:
        for i in range(6):
            yield factory(i)
            # When input i+1 is pulled, at most `limit` tasks may have started before it.
            assert len(started) <= i + 1

    outcomes: list[Any] = await settle(tasks(), limit=2)  # type: ignore[arg-type]
    assert [o.value for o in outcomes if isinstance(o, Fulfilled)] == list(range(6))


async def test_per_task_timeout_rejects_only_the_slow_task() -> None:
    """A task past its timeout becomes Rejected(timeout); the quick one is fulfilled."""
    outcomes = await settle([value_after(5, "slow"), value_after(0, "quick")], timeout=0.05)
    slow, quick = outcomes
    assert isinstance(slow, Rejected) and isinstance(slow.error, CallTimeout)
    assert "timed out after 0.05s" in slow.message
    assert isinstance(quick, Fulfilled)


async def test_deadline_keeps_finished_work_and_times_out_the_rest() -> None:
    """At the deadline, finished tasks are kept; running and unstarted ones become timeouts."""
    spy = Spy()
    tasks = [spy.task("quick", 0.0), spy.task("slow", 5), spy.task("queued", 0.0)]
    outcomes = await settle(tasks, limit=2, deadline=0.05)
    assert [o.status for o in outcomes] == ["fulfilled", "rejected", "fulfilled"]
    outcomes = await settle(
        [spy.task("a", 5), spy.task("b", 5), spy.task("c", 0)], limit=2, deadline=0.05
    )
    assert [o.kind for o in outcomes if isinstance(o, Rejected)] == [ErrorKind.TIMEOUT] * 3
    assert "not started" in outcomes[2].message  # type: ignore[union-attr]
    assert {"a", "b"} <= spy.cancelled, "running tasks must really be cancelled at the deadline"


async def test_a_task_raising_timeout_itself_is_not_blamed_on_the_deadline() -> None:
    """Only our own timer turns into 'timed out after'; a task's own TimeoutError is kept."""
    outcomes = await settle([fail_after(0, TimeoutError("upstream"))], timeout=10)
    rejected = outcomes[0]
    assert isinstance(rejected, Rejected)
    assert str(rejected.error) == "upstream"
    assert rejected.kind is ErrorKind.TIMEOUT


async def test_gather_all_cancels_running_siblings_and_waits_for_them() -> None:
    """The first failure cancels the siblings still running; when it raises, they have stopped."""
    spy = Spy()
    tasks = [spy.task("slow1", 5), spy.task("bad", 0.01, ValueError("bad")), spy.task("slow2", 5)]
    with pytest.raises(ValueError, match="bad"):
        await gather_all(tasks)
    assert spy.cancelled == {"slow1", "slow2"}
    assert spy.running == 0, "no sibling may still be running when gather_all raises"


async def test_gather_all_does_not_start_queued_tasks_after_a_failure() -> None:
    """Inputs waiting for a slot are never started once a failure aborted the run."""
    spy = Spy()
    tasks = [spy.task("bad", 0.0, ValueError("bad")), spy.task("slow", 5), spy.task("later", 0)]
    with pytest.raises(ValueError, match="bad"):
        await gather_all(tasks, limit=2)
    assert "later" not in spy.finished and spy.running == 0


async def test_gather_all_returns_values_in_order_when_all_succeed() -> None:
    """With no failure, gather_all is Promise.all: the values in input order."""
    assert await gather_all([value_after(0.02, 1), value_after(0, 2)]) == [1, 2]


async def test_as_settled_yields_in_completion_order_with_indexes() -> None:
    """as_settled streams outcomes as they finish, each with the index of its input."""
    order = []
    async for index, outcome in as_settled([value_after(0.04, "a"), value_after(0, "b")]):
        order.append((index, outcome.status))
    assert order == [(1, "fulfilled"), (0, "fulfilled")]


async def test_breaking_out_of_as_settled_cancels_the_rest() -> None:
    """Closing the iterator early cancels the tasks still running."""
    spy = Spy()
    settling = as_settled([spy.task("fast", 0), spy.task("slow", 5)])
    async with aclosing(cast(AsyncGenerator[Any, None], settling)) as stream:
        async for _ in stream:
            break
    assert spy.cancelled == {"slow"} and spy.running == 0


async def test_cancelling_the_caller_cancels_every_task() -> None:
    """Ctrl-C (cancelling the awaiting task) propagates into every running task."""
    spy = Spy()
    runner = asyncio.create_task(settle([spy.task("a", 5), spy.task("b", 5)]))
    await asyncio.sleep(0.01)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert spy.cancelled == {"a", "b"} and spy.running == 0


async def test_unstarted_coroutines_are_closed_not_leaked() -> None:
    """Coroutines never started because of the deadline are closed (no 'never awaited' warning)."""
    coros = [value_after(5, "a"), value_after(5, "b")]
    outcomes = await settle(coros, limit=1, deadline=0.02)
    assert all(isinstance(o, Rejected) for o in outcomes)
    assert inspect.getcoroutinestate(coros[1]) == inspect.CORO_CLOSED


async def test_bad_arguments_are_refused_up_front() -> None:
    """A zero limit or a negative timeout is a programming error, raised before anything runs."""
    with pytest.raises(ValueError, match="limit"):
        await settle([], limit=0)
    with pytest.raises(ValueError, match="timeout"):
        await settle([], timeout=-1)


async def test_fail_fast_siblings_settle_as_cancelled_in_drive() -> None:
    """In fail-fast mode every input still gets an outcome: the siblings are Cancelled."""
    from fanwise.settle import drive

    spy = Spy()
    seen: dict[int, object] = {}
    await drive(
        [spy.task("slow", 5), spy.task("bad", 0, ValueError("x")), spy.task("queued", 0)],
        seen.__setitem__,
        limit=2,
        fail_fast=True,
    )
    assert sorted(seen) == [0, 1, 2]
    assert isinstance(seen[0], Rejected) and isinstance(seen[0].error, Cancelled)
    assert isinstance(seen[2], Rejected) and isinstance(seen[2].error, Cancelled)
