"""``Promise.allSettled``, ``Promise.all`` and as-completed for asyncio, done with structure.

Each input is an awaitable, or a zero-argument callable returning one (a factory starts nothing
until a slot is free, which keeps memory flat for long inputs). Inputs are consumed lazily, at most
``limit`` run at once, each may have a ``timeout``, and an overall ``deadline`` ends the run with
whatever has finished: calls still running, and calls never started, become ``Rejected`` with a
``CallTimeout``. Nothing here knows about models.

Unlike JavaScript's ``Promise.all``, ``gather_all`` does not leave the siblings of a failure
running: it cancels them and waits until they have stopped before it raises.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias, TypeVar, cast

from fanwise.outcome import Attempt, CallTimeout, Cancelled, Fulfilled, Rejected, error_to_dict

T = TypeVar("T")

Task: TypeAlias = Awaitable[T] | Callable[[], Awaitable[T]]


async def settle(
    tasks: Iterable[Task[T]],
    *,
    limit: int | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
) -> list[Fulfilled[T] | Rejected]:
    """Run every task and return one outcome per input, in input order. Never raises for a task."""
    results: dict[int, Fulfilled[T] | Rejected] = {}
    await drive(tasks, results.__setitem__, limit=limit, timeout=timeout, deadline=deadline)
    return [results[i] for i in range(len(results))]


async def gather_all(
    tasks: Iterable[Task[T]],
    *,
    limit: int | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
) -> list[T]:
    """All values in input order, or the first failure raised once every sibling has stopped."""
    results: dict[int, Fulfilled[T] | Rejected] = {}
    first: list[Rejected] = []

    def keep(index: int, outcome: Fulfilled[T] | Rejected) -> None:
        results[index] = outcome
        if isinstance(outcome, Rejected) and not first:
            first.append(outcome)

    await drive(tasks, keep, limit=limit, timeout=timeout, deadline=deadline, fail_fast=True)
    if first:
        raise first[0].error
    return [cast(Fulfilled[T], results[i]).value for i in range(len(results))]


async def as_settled(
    tasks: Iterable[Task[T]],
    *,
    limit: int | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
) -> AsyncIterator[tuple[int, Fulfilled[T] | Rejected]]:
    """Yield ``(index, outcome)`` as each task ends, in completion order.

    Breaking out early cancels the tasks still running once the generator is closed; use
    ``contextlib.aclosing`` to close it at once.
    """
    queue: asyncio.Queue[tuple[int, Fulfilled[T] | Rejected] | None] = asyncio.Queue()

    async def run() -> None:
        try:
            await drive(
                tasks,
                lambda i, o: queue.put_nowait((i, o)),
                limit=limit,
                timeout=timeout,
                deadline=deadline,
            )
        finally:
            queue.put_nowait(None)

    runner = asyncio.create_task(run())
    try:
        while (item := await queue.get()) is not None:
            yield item
        await runner
    finally:
        if not runner.done():
            runner.cancel()
            await asyncio.wait([runner])


@dataclass(slots=True)
class _Drive:
    """One ``drive``'s state: whether a fail-fast abort is under way."""

    aborting: bool = False


async def drive(
    tasks: Iterable[Task[T]],
    on_settled: Callable[[int, Fulfilled[T] | Rejected], None],
    *,
    limit: int | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
    fail_fast: bool = False,
) -> None:
    """The one scheduler loop under ``settle``, ``gather_all`` and ``as_settled``.

    ``on_settled`` is called exactly once per input, as soon as its outcome exists. With
    ``fail_fast`` the first rejection cancels the running siblings (they settle as
    ``Cancelled``) and the inputs not yet started are not started.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    for name, value in (("timeout", timeout), ("deadline", deadline)):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be a positive number of seconds, got {value}")

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    deadline_at = t0 + deadline if deadline is not None else None
    slots = asyncio.Semaphore(limit) if limit is not None else None
    running: dict[int, asyncio.Task[None]] = {}
    run = _Drive()

    def settle_unstarted(index: int, task: Task[T], error: Exception) -> None:
        if inspect.iscoroutine(task):
            task.close()  # never awaited: close it so Python does not warn
        on_settled(index, Rejected(error, started=loop.time() - t0))

    def abort() -> None:
        run.aborting = True
        current = asyncio.current_task()
        for other in running.values():
            if other is not current:
                other.cancel()

    async def run_one(index: int, task: Task[T]) -> None:
        started = loop.time()
        ends = [e for e in (deadline_at, started + timeout if timeout else None) if e is not None]
        scope = asyncio.timeout_at(min(ends) if ends else None)
        outcome: Fulfilled[T] | Rejected
        try:
            async with scope:
                value = await (task() if callable(task) else task)
        except asyncio.CancelledError:
            if not run.aborting:
                raise
            error: Exception = Cancelled("a sibling call failed (fail-fast mode)")
            outcome = _rejected(error, started, loop.time(), t0)
        except Exception as exc:
            error = exc
            if scope.expired():
                error = _timeout_error(started, timeout, deadline_at, deadline)
                error.__cause__ = exc
            outcome = _rejected(error, started, loop.time(), t0)
        else:
            elapsed = loop.time() - started
            attempt = Attempt(number=1, started=started - t0, duration=elapsed)
            outcome = Fulfilled(value, elapsed, started - t0, (attempt,))
        finally:
            running.pop(index, None)
            if slots is not None:
                slots.release()
        on_settled(index, outcome)
        if fail_fast and isinstance(outcome, Rejected) and not run.aborting:
            abort()

    async with asyncio.TaskGroup() as group:
        for index, task in enumerate(tasks):
            if not await _acquire(slots, deadline_at, loop):
                late = CallTimeout(f"not started: deadline of {deadline:g}s passed")
                settle_unstarted(index, task, late)
            elif run.aborting:
                if slots is not None:
                    slots.release()
                settle_unstarted(index, task, Cancelled("not started: a call failed (fail-fast)"))
            else:
                running[index] = group.create_task(run_one(index, task))


async def _acquire(
    slots: asyncio.Semaphore | None, deadline_at: float | None, loop: asyncio.AbstractEventLoop
) -> bool:
    """Wait for a free slot; False when the deadline passes first."""
    if deadline_at is not None and loop.time() >= deadline_at:
        return False
    if slots is None:
        return True
    if deadline_at is None:
        await slots.acquire()
        return True
    try:
        async with asyncio.timeout_at(deadline_at):
            await slots.acquire()
    except TimeoutError:
        return False
    return True


def _timeout_error(
    started: float, timeout: float | None, deadline_at: float | None, deadline: float | None
) -> CallTimeout:
    if deadline_at is not None and (timeout is None or deadline_at <= started + timeout):
        return CallTimeout(f"deadline of {deadline:g}s passed while running")
    return CallTimeout(f"timed out after {timeout:g}s")


def _rejected(error: Exception, started: float, ended: float, t0: float) -> Rejected:
    attempt = Attempt(1, started - t0, ended - started, error_to_dict(error))
    return Rejected(error, ended - started, started - t0, (attempt,))


__all__ = ["Task", "as_settled", "drive", "gather_all", "settle"]
