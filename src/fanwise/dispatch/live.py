"""The live dispatch: each call sent as its own request, through the limiter, with retries.

At most ``concurrency`` calls are under way at once, and a ticket is taken only when a slot is
free (so a long input is read lazily and memory stays flat). Each attempt waits for a permit,
runs under ``timeout``, and on a retryable error waits as the retry policy says, within the
run's retry budget.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator

from fanwise.calls import CallOutcome
from fanwise.dispatch.base import Dispatch, Run, Ticket
from fanwise.events import CallRetrying, CallStarted
from fanwise.limits import Limiter, Unlimited, request_tokens
from fanwise.models.base import Completion, DeltaSink, Model, Request
from fanwise.outcome import CallTimeout, error_to_dict
from fanwise.retry import RetryBudget, RetryPolicy
from fanwise.structured import accept, attempts_usage, cost_of, next_request


class Live(Dispatch):
    """Per-call requests to ``model`` under a concurrency cap, a limiter and the retry policy."""

    def __init__(
        self,
        model: Model,
        *,
        concurrency: int = 8,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        limiter: Limiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        seed: int | None = None,
        repair: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
        self.model = model
        self.concurrency = concurrency
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.retry_budget = retry_budget or RetryBudget(None)
        self.limiter: Limiter = limiter or Unlimited()
        self.sleep = sleep
        self.rng = random.Random(seed)
        self.repair = repair  # an answer that broke its schema: re-ask with the error, or resend

    async def send(self, tickets: Iterable[Ticket], run: Run) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        feed = iter(tickets)
        async with asyncio.TaskGroup() as group:
            if run.warm:
                await self._warm(feed, run, slots, group)
            while True:
                await slots.acquire()  # before taking a ticket: it is admitted when taken
                ticket = next(feed, None)
                if ticket is None:
                    break
                group.create_task(self._one(ticket, run, slots))

    async def _warm(
        self,
        feed: Iterator[Ticket],
        run: Run,
        slots: asyncio.Semaphore,
        group: asyncio.TaskGroup,
    ) -> None:
        """Send the first call alone, streamed, and return once its answer has begun (its first
        text) or it has ended: by then the provider has cached the prefix the calls share."""
        await slots.acquire()
        first = next(feed, None)
        if first is None:
            slots.release()
            return
        begun = asyncio.Event()
        group.create_task(self._one(first, run, slots, lambda _: begun.set(), begun))
        await begun.wait()

    async def _one(
        self,
        ticket: Ticket,
        run: Run,
        slots: asyncio.Semaphore,
        on_delta: DeltaSink | None = None,
        ended: asyncio.Event | None = None,
    ) -> None:
        try:
            outcome = await self.outcome(ticket, run, on_delta)
        finally:
            slots.release()
            if ended is not None:
                ended.set()
        run.settled(ticket, outcome)

    async def outcome(
        self, ticket: Ticket, run: Run, on_delta: DeltaSink | None = None
    ) -> CallOutcome:
        """One call's attempts to their end (the synthesis streams through ``on_delta``)."""
        try:
            value = await self._attempts(ticket, run, on_delta)
        except Exception as exc:
            return ticket.outcome(exc, run.now())
        return ticket.outcome(value, run.now())

    async def _attempts(self, ticket: Ticket, run: Run, on_delta: DeltaSink | None) -> Completion:
        call = ticket.call
        waited = 0.0
        tries = 0  # this dispatch's own: attempts made elsewhere (a batch) are not counted
        # The next attempt's request (repaired, after a batch's schema break), and the tokens
        # of the attempts that failed (a batch's too).
        request, spent = ticket.request, attempts_usage(ticket.attempts)
        while True:
            tries += 1
            started = run.now()
            number = ticket.begin(started, waited)
            run.emit(CallStarted(ticket.index, call.key, call.label, number, started, call.request))
            try:
                answer = await self._attempt(request, on_delta, ticket, run)
                completion = accept(answer, call.schema, spent)
            except Exception as error:
                ticket.end(run.now(), error)
                wait = self.retry.delay(tries, error, self.rng)
                if wait is None or not self.retry_budget.try_spend():
                    raise
                spent += cost_of(error)
                request = next_request(request, error, repair=self.repair)
                failure = error_to_dict(error)
                run.emit(
                    CallRetrying(
                        ticket.index, call.key, call.label, number, failure, wait, run.now()
                    )
                )
                await self.sleep(wait)
                waited = wait
                continue
            ticket.end(run.now())
            return completion

    async def _attempt(
        self, request: Request, on_delta: DeltaSink | None, ticket: Ticket, run: Run
    ) -> Completion:
        estimate = request_tokens(request)
        ticket.held_since = asked = run.now()
        async with self.limiter.permit(estimate) as permit:
            ticket.queued, ticket.held_since = run.now() - asked, None
            scope = asyncio.timeout(self.timeout)
            try:
                async with scope:
                    completion = await self.model.complete(request, on_delta=on_delta)
            except TimeoutError as exc:
                if scope.expired():
                    raise CallTimeout(f"attempt timed out after {self.timeout:g}s") from exc
                raise
            permit.record(tokens=completion.usage.total_tokens, headers=completion.headers)
            return completion


__all__ = ["Live"]
