"""The limiter the engine talks to, and the three hooks every limit implements.

The engine asks for a permit before every attempt and reports the real cost once it is known
(``Permit.record``); the permit's exit sees the attempt's exception, if any. Behind the permit,
``Limits`` runs any number of limits, each a small object with aiometer's three hooks: how long
until a ticket may start, that it started, how it finished. Waiting happens in one place, here,
on an injected clock and sleep, so tests run on a fake clock and never wait for real.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from fanwise.limits._evidence import Evidence, Signal
from fanwise.limits._pressure import mark_back_pressure
from fanwise.outcome import CallError, ErrorKind, classify

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_EPSILON = 1e-9
"""Waits shorter than this are rounding noise: the ticket may start."""


class Permit(Protocol):
    """Handed out for one attempt; the engine reports the real cost once it is known."""

    def record(self, *, tokens: int, headers: Mapping[str, str]) -> None: ...


class Limiter(Protocol):
    def permit(self, estimated_tokens: int) -> AbstractAsyncContextManager[Permit]: ...


@dataclass(eq=False, slots=True)
class Ticket:
    """One attempt as the limits see it. Compared by identity, so limits can key state on it."""

    tokens: int


@dataclass(frozen=True, slots=True)
class Ending:
    """How an attempt ended, as far as limits care: its real cost, headers and error."""

    tokens: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def rate_limited(self) -> bool:
        return self.error is not None and classify(self.error) is ErrorKind.RATE_LIMITED

    @property
    def retry_after(self) -> float | None:
        return self.error.retry_after if isinstance(self.error, CallError) else None


class Limit(Protocol):
    """One rule on when attempts may start. ``now`` is the limiter's clock, in seconds."""

    def wait(self, ticket: Ticket, now: float) -> float:
        """Seconds until ``ticket`` may start: 0 now, ``math.inf`` until an attempt finishes."""
        ...

    def started(self, ticket: Ticket, now: float) -> None: ...

    def finished(self, ticket: Ticket, ending: Ending, now: float) -> None: ...


class Recorder:
    """A ``Permit`` that keeps what the engine reports, for the limits to read after the call."""

    def __init__(self) -> None:
        self.tokens: int | None = None
        self.headers: Mapping[str, str] = {}

    def record(self, *, tokens: int, headers: Mapping[str, str]) -> None:
        self.tokens = tokens
        self.headers = headers


class Limits:
    """A limiter made of limits: an attempt starts once every one of them lets it.

    Tickets are served first come, first served: one waits at the head of the line while the
    rest queue behind it, so a burst of calls is spread out, never stampeded. One ``Limits`` may
    be shared by several engines and workflows in one event loop; they then share its limits.

    The engine's token estimate knows the prompt but not the answer, so ``Limits`` learns what
    calls really cost beyond their estimate (a moving average of ``usage`` minus estimate) and
    adds it to every ticket: token limits then pace by what calls really spend.

    With an ``Evidence`` (given, or the one its adaptive limits share), a 429 it judges evidence
    of a limit is marked back-pressure on the error (``is_back_pressure``): the retry loop sends
    the call back to wait for a permit instead of spending one of its retries.
    """

    LEARNING_RATE = 0.2
    """Weight of the newest call in the moving average of tokens beyond the estimate."""

    def __init__(
        self,
        *limits: Limit,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        evidence: Evidence | None = None,
    ):
        self.limits = limits
        self.clock = clock
        self.sleep = sleep
        found = (getattr(limit, "evidence", None) for limit in limits)
        self.evidence = evidence or next((e for e in found if isinstance(e, Evidence)), None)
        """Judges each 429: back-pressure (a limit's) or noise. None: every 429 is noise."""
        self.extra_tokens = 0.0
        """What a call has lately cost beyond its estimate, on average: added to each ticket."""
        self._line = asyncio.Lock()
        self._finished: asyncio.Event | None = None

    @asynccontextmanager
    async def permit(self, estimated_tokens: int) -> AsyncIterator[Permit]:
        estimate = max(0, estimated_tokens)
        ticket = Ticket(estimate + round(self.extra_tokens))
        if self._line.locked() or self._wait(ticket, self.clock()) > _EPSILON:
            async with self._line:
                await self._wait_for_turn(ticket)
                self._start(ticket)
        else:  # nobody in line and nothing to wait for: the usual case, without the lock
            self._start(ticket)
        recorder = Recorder()
        try:
            yield recorder
        except BaseException as exc:
            headers = recorder.headers or (exc.headers if isinstance(exc, CallError) else {})
            ending = Ending(recorder.tokens, headers, exc)
            self._finish(ticket, ending)
            evidence = self.evidence
            if ending.rate_limited and evidence and evidence.judge(ticket, ending) is Signal.LIMIT:
                mark_back_pressure(exc)
            raise
        self._finish(ticket, Ending(recorder.tokens, recorder.headers))
        if recorder.tokens is not None:
            beyond = max(0, recorder.tokens - estimate)
            self.extra_tokens += self.LEARNING_RATE * (beyond - self.extra_tokens)

    def _wait(self, ticket: Ticket, now: float) -> float:
        wait = 0.0
        for limit in self.limits:
            wait = max(wait, limit.wait(ticket, now))
        return wait

    def _start(self, ticket: Ticket) -> None:
        now = self.clock()
        for limit in self.limits:
            limit.started(ticket, now)

    async def _wait_for_turn(self, ticket: Ticket) -> None:
        while True:
            wait = self._wait(ticket, self.clock())
            if wait <= _EPSILON:
                return
            if math.isinf(wait):
                self._finished = asyncio.Event()
                await self._finished.wait()
            else:
                await self.sleep(wait)

    def _finish(self, ticket: Ticket, ending: Ending) -> None:
        now = self.clock()
        for limit in self.limits:
            limit.finished(ticket, ending, now)
        if self._finished is not None:
            self._finished.set()

    def ready_in(self, estimated_tokens: int) -> float:
        """Seconds until an attempt of this size could start: 0 now, ``math.inf`` until an
        attempt finishes. Asks without taking anything (``EndpointPool`` picks by it)."""
        ticket = Ticket(max(0, estimated_tokens) + round(self.extra_tokens))
        wait = self._wait(ticket, self.clock())
        if self._line.locked():  # someone is already waiting in line: they go first
            wait = max(wait, _EPSILON * 2)
        return wait if wait > _EPSILON else 0.0

    def __repr__(self) -> str:
        return f"Limits({', '.join(map(repr, self.limits))})"


class _FreePermit:
    def record(self, *, tokens: int, headers: Mapping[str, str]) -> None:
        return None


class Unlimited:
    """No pacing: the engine's concurrency cap is the only limit."""

    @asynccontextmanager
    async def permit(self, estimated_tokens: int) -> AsyncIterator[Permit]:
        yield _FreePermit()

    def __repr__(self) -> str:
        return "Unlimited()"


def estimate_tokens(text: str) -> int:
    """A cheap, deliberately generous guess (4 characters a token) made before the call."""
    return max(1, len(text) // 4 + 1)
