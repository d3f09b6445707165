"""The live dispatch: each call sent as its own request, through the limiter, with retries.

At most ``concurrency`` calls are under way at once, and a ticket is taken only when a slot is
free (so a long input is read lazily and memory stays flat). Each attempt waits for a permit,
runs under ``timeout``, and on a retryable error waits as the retry policy says, within the
run's retry budget.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fanwise.calls import CallOutcome
from fanwise.dispatch.base import Dispatch, Run, Ticket, Warm
from fanwise.events import CallRetrying, CallStarted
from fanwise.limits import Limiter, Permit, Unlimited, is_back_pressure, request_tokens
from fanwise.models.base import Completion, DeltaSink, Model, Request
from fanwise.outcome import CallTimeout, error_to_dict
from fanwise.retry import MaxWaitExceeded, RetryBudget, RetryPolicy
from fanwise.schema_fallback import SchemaForm
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
        self.schema_form = SchemaForm()  # json_object once the server refuses json_schema

    async def send(self, tickets: Iterable[Ticket], run: Run) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        feed = iter(tickets)
        async with asyncio.TaskGroup() as group:
            if run.warm is not Warm.OFF:
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
        """Send the first call alone and return once the provider has cached the prefix the
        calls share: when its first text arrives (``Warm.FIRST_TEXT``: it is streamed), or when
        it has settled."""
        await slots.acquire()
        first = next(feed, None)
        if first is None:
            slots.release()
            return
        begun = asyncio.Event()
        on_text = (lambda _: begun.set()) if run.warm is Warm.FIRST_TEXT else None
        group.create_task(self._one(first, run, slots, on_text, begun))
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
            blocked = await run.cleared(ticket)  # the journal committed what came before
            if blocked is not None:
                outcome = ticket.outcome(blocked, run.now())
            else:
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
            if ticket.gate is not None:  # --max-cost holds it until it may go
                gate, ticket.gate = ticket.gate, None
                await gate
            value = await self._attempts(ticket, run, on_delta)
        except Exception as exc:
            return ticket.outcome(exc, run.now())
        return ticket.outcome(value, run.now())

    async def _attempts(self, ticket: Ticket, run: Run, on_delta: DeltaSink | None) -> Completion:
        call = ticket.call
        waited = 0.0
        tries = 0  # this dispatch's own: attempts made elsewhere (a batch) are not counted
        pressed: float | None = None  # when a limit first refused this call (back-pressure)
        # The next attempt's request (repaired, after a batch's schema break), and the tokens
        # of the attempts that failed (a batch's too).
        request, spent = ticket.request, attempts_usage(ticket.attempts)
        if call.schema is not None:
            request = self.schema_form.sent(request)
        while True:
            tries += 1
            started = run.now()
            number = ticket.begin(started, waited)
            run.emit(CallStarted(ticket.index, call.key, call.label, number, started, call.request))
            try:
                patience = self._patience(pressed, run)
                answer = await self._attempt(request, on_delta, ticket, run, patience)
                completion = accept(answer, call.schema, spent, request.max_output_tokens)
            except MaxWaitExceeded as error:
                ticket.end(run.now(), error)
                raise
            except Exception as error:
                now = run.now()
                ticket.end(now, error)
                fallback = self.schema_form.fallback(error, request) if call.schema else None
                if fallback is not None:  # not a retry: the same question in a form it takes
                    request, tries = fallback, tries - 1
                    failure = error_to_dict(error)
                    run.emit(
                        CallRetrying(ticket.index, call.key, call.label, number, failure, 0.0, now)
                    )
                    continue
                back = is_back_pressure(error)
                if back:  # a limit's 429: wait for capacity, not a retry
                    pressed = now if pressed is None else pressed
                    cap = self.retry.max_wait
                    if cap is not None and now - pressed >= cap:
                        raise MaxWaitExceeded.after(now - pressed, error) from error
                    if not self.retry_budget.try_spend():
                        raise
                    tries -= 1
                    wait = 0.0  # the limiter holds the next permit as long as the limit needs
                else:
                    delay = self.retry.delay(tries, error, self.rng)
                    if delay is None or not self.retry_budget.try_spend():
                        raise
                    wait = delay
                spent += cost_of(error)
                request = next_request(request, error, repair=self.repair)
                failure = error_to_dict(error)
                run.emit(
                    CallRetrying(
                        ticket.index, call.key, call.label, number, failure, wait, run.now()
                    )
                )
                if not back:
                    await self.sleep(wait)
                waited = wait
                continue
            ticket.end(run.now())
            return completion

    def _patience(self, pressed: float | None, run: Run) -> float | None:
        """How long the next permit may be waited for: what is left of ``max_wait`` once a
        limit has refused the call (None: no cap, as before any refusal)."""
        cap = self.retry.max_wait
        if pressed is None or cap is None:
            return None
        return max(0.0, cap - (run.now() - pressed))

    async def _attempt(
        self,
        request: Request,
        on_delta: DeltaSink | None,
        ticket: Ticket,
        run: Run,
        patience: float | None = None,
    ) -> Completion:
        estimate = request_tokens(request)
        ticket.held_since = asked = run.now()
        held = (
            self.limiter.permit(estimate)
            if patience is None
            else self._patient_permit(estimate, patience)
        )
        async with held as permit:
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

    def _patient_permit(
        self, estimate: int, patience: float
    ) -> AbstractAsyncContextManager[Permit]:
        """A permit waited for at most ``patience`` seconds: past it, ``MaxWaitExceeded``."""
        assert self.retry.max_wait is not None
        cap = self.retry.max_wait

        @asynccontextmanager
        async def held() -> AsyncIterator[Permit]:
            permit = self.limiter.permit(estimate)
            try:
                async with asyncio.timeout(patience):
                    granted = await permit.__aenter__()
            except TimeoutError:
                raise MaxWaitExceeded.after(cap, None) from None
            try:
                yield granted
            except BaseException as exc:
                if not await permit.__aexit__(type(exc), exc, exc.__traceback__):
                    raise
            else:
                await permit.__aexit__(None, None, None)

        return held()


__all__ = ["Live"]
