"""Runs calls through the journal, the limiter, the model and the retry policy, in parallel.

Each call ends as one outcome carrying every attempt it made; every step is an event. The engine
owns no terminal and no file: observers and the store are handed in.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from fanwise.events import CallRetrying, CallSettled, CallStarted, Event, Observer
from fanwise.limits import Limiter, Unlimited, estimate_tokens
from fanwise.models.base import Completion, DeltaSink, Model, Request
from fanwise.outcome import (
    Attempt,
    CallTimeout,
    Fulfilled,
    Rejected,
    error_to_dict,
)
from fanwise.retry import RetryBudget, RetryPolicy
from fanwise.settle import drive

CallOutcome = Fulfilled[Completion] | Rejected


@dataclass(frozen=True, slots=True)
class Call:
    """One request to make. ``key`` identifies it across runs (the journal's cache and resume)."""

    request: Request
    label: str = ""
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", request_key(self.request))
        if not self.label:
            object.__setattr__(self, "label", self.request.prompt)


def request_key(request: Request) -> str:
    """A stable digest of everything that shapes the answer: same key, same question."""
    canonical = json.dumps(request.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


class Store(Protocol):
    """Where outcomes are kept the moment they exist, and found again (resume, cache)."""

    def lookup(self, call: Call) -> Fulfilled[Completion] | None: ...

    def record(self, index: int, call: Call, outcome: CallOutcome) -> None: ...


@dataclass(slots=True)
class _Progress:
    """What one call has done so far; it outlives a cancellation, so nothing is forgotten."""

    call: Call
    attempts: list[Attempt] = field(default_factory=list)
    first_start: float | None = None
    current: tuple[int, float, float] | None = None  # attempt number, start, wait before it
    queued: float = 0.0  # of the current attempt: seconds until the limiter let it go
    held_since: float | None = None  # set while the current attempt waits for the limiter
    cached: Fulfilled[Completion] | None = None


class Engine:
    """Fan calls out to a model under a concurrency cap, retries, a limiter and a deadline."""

    def __init__(
        self,
        model: Model,
        *,
        concurrency: int = 8,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        limiter: Limiter | None = None,
        store: Store | None = None,
        observer: Observer | None = None,
        admit: Callable[[Call], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        seed: int | None = None,
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
        self.store = store
        self.observer = observer
        self.admit = admit  # called before a call's first send; raising refuses it (--max-cost)
        self.clock = clock
        self.sleep = sleep
        self.rng = random.Random(seed)
        self.origin = clock()

    def now(self) -> float:
        """Seconds since the engine was made: the shared time axis of every event."""
        return self.clock() - self.origin

    def emit(self, event: Event) -> None:
        if self.observer is not None:
            self.observer(event)

    async def run(
        self,
        calls: Iterable[Call],
        *,
        deadline: float | None = None,
        fail_fast: bool = False,
        on_outcome: Callable[[int, Call, CallOutcome], None] | None = None,
        keep: bool = True,
    ) -> list[CallOutcome]:
        """Run every call; the outcomes come back in input order (``keep=False`` keeps none).

        With ``fail_fast`` the first rejection cancels the calls still running; they come back as
        ``Cancelled``, and the calls that had finished are kept.
        """
        progress: dict[int, _Progress] = {}
        results: dict[int, CallOutcome] = {}

        def factories() -> Iterator[Callable[[], Awaitable[Completion]]]:
            for index, call in enumerate(calls):
                state = progress[index] = self._progress(call)
                yield partial(self._attempts, index, state)

        def settled(index: int, raw: CallOutcome) -> None:
            state = progress.pop(index)
            outcome = self._settle(index, state, raw)
            if on_outcome is not None:
                on_outcome(index, state.call, outcome)
            if keep:
                results[index] = outcome

        await drive(
            factories(),
            settled,
            limit=self.concurrency,
            deadline=deadline,
            fail_fast=fail_fast,
        )
        return [results[i] for i in sorted(results)]

    async def complete(
        self, call: Call, *, index: int = 0, on_delta: DeltaSink | None = None
    ) -> CallOutcome:
        """One call on its own (the synthesis), with the same journal, retries, limits, events."""
        state = self._progress(call)
        begun = self.now()
        raw: CallOutcome
        try:
            value = await self._attempts(index, state, on_delta)
        except Exception as exc:
            raw = Rejected(exc, self.now() - begun, begun)
        else:
            raw = Fulfilled(value, self.now() - begun, begun)
        return self._settle(index, state, raw)

    def _progress(self, call: Call) -> _Progress:
        state = _Progress(call)
        if self.store is not None:
            state.cached = self.store.lookup(call)
        return state

    def _settle(self, index: int, state: _Progress, raw: CallOutcome) -> CallOutcome:
        outcome = self._finish(state, raw)
        if self.store is not None:
            self.store.record(index, state.call, outcome)
        self.emit(CallSettled(index, state.call.key, state.call.label, outcome, self.now()))
        return outcome

    async def _attempts(
        self, index: int, state: _Progress, on_delta: DeltaSink | None = None
    ) -> Completion:
        if state.cached is not None:
            return state.cached.value
        call = state.call
        if self.admit is not None:
            self.admit(call)
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            started = self.now()
            if state.first_start is None:
                state.first_start = started
            state.current = (attempt, started, waited)
            state.queued = 0.0
            self.emit(CallStarted(index, call.key, call.label, attempt, started))
            try:
                completion = await self._attempt(call.request, on_delta, state)
            except Exception as error:
                state.attempts.append(
                    Attempt(
                        attempt,
                        started,
                        self.now() - started,
                        error_to_dict(error),
                        waited,
                        state.queued,
                    )
                )
                state.current = None
                wait = self.retry.delay(attempt, error, self.rng)
                if wait is None or not self.retry_budget.try_spend():
                    raise
                self.emit(
                    CallRetrying(
                        index, call.key, call.label, attempt, error_to_dict(error), wait, self.now()
                    )
                )
                await self.sleep(wait)
                waited = wait
                continue
            duration = self.now() - started
            state.attempts.append(Attempt(attempt, started, duration, None, waited, state.queued))
            state.current = None
            return completion

    async def _attempt(
        self, request: Request, on_delta: DeltaSink | None, state: _Progress
    ) -> Completion:
        estimate = estimate_tokens(request.prompt) + (request.max_output_tokens or 0)
        state.held_since = asked = self.now()
        async with self.limiter.permit(estimate) as permit:
            state.queued, state.held_since = self.now() - asked, None
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

    def _finish(self, state: _Progress, raw: CallOutcome) -> CallOutcome:
        """The scheduler's outcome, rebuilt with the call's own history on the engine's clock."""
        end = self.now()
        if state.cached is not None and isinstance(raw, Fulfilled):
            return Fulfilled(state.cached.value, 0.0, end, (), cached=True)
        started = state.first_start if state.first_start is not None else end - raw.latency
        attempts = list(state.attempts)
        if isinstance(raw, Rejected) and state.current is not None:
            # Cut short mid-attempt (deadline, fail-fast, Ctrl-C): that attempt counts too.
            number, attempt_start, waited = state.current
            error = error_to_dict(raw.error)
            queued = state.queued if state.held_since is None else end - state.held_since
            attempts.append(
                Attempt(number, attempt_start, end - attempt_start, error, waited, queued)
            )
        if isinstance(raw, Fulfilled):
            return Fulfilled(raw.value, end - started, started, tuple(attempts))
        return Rejected(raw.error, end - started, started, tuple(attempts))
