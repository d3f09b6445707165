"""One budget for many workers: the run's limiters in one named Ray actor, leased out in batches.

``SharedLimits`` runs in a single actor and holds the run's limiters in order (``"run"``, or one
per endpoint): each the very ``Limits`` a one-process run uses, so client buckets, pacing by
``x-ratelimit-*`` headers, ``Retry-After`` holds and the AIMD window live in one place and every
worker's attempts feed them. A 429 one worker sees holds every worker's next permit. The actor
also picks each permit's endpoint as ``EndpointPool`` does in one process, but by the load of
every worker together: among the endpoints whose limits let an attempt start now, the one with
the fewest permits out.

``LeasedLimiter`` is a worker's side of it, a ``Limiter`` that keeps the actor off the hot path:
it asks for permits in batches (a lease: one for every attempt waiting, plus what the worker used
in the last ``LEASE_AHEAD`` seconds, so at a high rate most attempts find a permit in hand) and
sends the attempts' endings (real tokens, rate-limit headers, error) back in batches, one call in
flight at a time. A permit not used within ``LEASE_TTL`` seconds, or still in hand when the
worker sees a 429 or closes, goes back unused. At a low rate every lease is of one permit, taken
when it is needed: nothing is hoarded where the limits bind. A permit still out when its worker
died is handed back by ``release_worker``, as a failed attempt, so a crash never leaks a slot.
A 429's verdict (back-pressure, or noise) is the actor's: ``finish`` answers with the tickets
whose 429 showed a limit, and the worker marks the error before its retry loop reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fanwise.endpoints import Endpoint, EndpointPool
from fanwise.limits import Clock, Limiter, Permit, Sleep, is_back_pressure, mark_back_pressure
from fanwise.limits._core import Recorder
from fanwise.models.base import Completion, DeltaSink, Model, Request
from fanwise.outcome import CallError, ErrorKind, NetworkError, error_from_dict, error_to_dict

LimiterFactory = Callable[[], Limiter]
KEPT_HEADERS = ("x-ratelimit-", "ratelimit", "anthropic-ratelimit-", "retry-after")
"""Only these response headers travel to the actor: the ones limits read."""
LEASE_AHEAD = 0.05
"""Seconds of a worker's recent rate of permits that a lease takes beyond what is waiting."""
MOST_AHEAD = 512
"""The most permits a lease takes beyond what is waiting."""
MOST_LEASES = 4
"""Lease calls a worker keeps at the actor at once while the limits pace it (its last lease came
back short): each call then brings one permit, and the next call is already waiting there."""
LEASE_TTL = 1.0
"""Seconds a leased permit may stay unused in a worker before it goes back."""
RATE_WINDOW = 1.0
"""Seconds over which a worker's rate of permits is averaged (exponentially)."""

Grant = tuple[int, int]
"""A leased permit: its ticket, and the index of the limiter (the endpoint) it is for."""
Ending = tuple[int, int | None, Mapping[str, str], Mapping[str, Any] | None]
"""How a leased permit's attempt ended: ticket, real tokens, kept headers, error (JSON form)."""

_member: contextvars.ContextVar[int] = contextvars.ContextVar("fanwise_shared_member")


def leased_member() -> int:
    """The endpoint index of the permit this attempt holds (0 outside a permit)."""
    return _member.get(0)


class _Elsewhere(Model):
    """The actor's endpoints have no model: the calls are made by the workers."""

    name = "elsewhere"

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        raise RuntimeError("the shared limits choose endpoints; the workers call them")


@dataclass(slots=True)
class _Out:
    """A permit out: its endpoint, its place in that endpoint's ``Limits``, its worker."""

    endpoint: Endpoint
    held: AbstractAsyncContextManager[Permit]
    permit: Permit
    worker: str


class SharedLimits:
    """The run's limiters, in order; made a Ray actor by ``fanwise.cluster.dispatch``."""

    def __init__(
        self,
        factories: Mapping[str, LimiterFactory],
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not factories:
            raise ValueError("shared limits need at least one limiter")
        endpoints = [Endpoint(name, _Elsewhere(), build()) for name, build in factories.items()]
        self.pool = EndpointPool(endpoints, clock=clock)
        self.sleep = sleep
        self._out: dict[int, _Out] = {}
        self._ids = itertools.count(1)
        self._freed = asyncio.Event()
        self._waiting = 0  # lease calls waiting for a permit to come back

    def _pick(self, estimate: int) -> tuple[int | None, float]:
        """``EndpointPool.pick``; with one limiter, only its own wait (the hot path)."""
        if len(self.pool.endpoints) > 1:
            return self.pool.pick(estimate)
        ready_in = getattr(self.pool.endpoints[0].limiter, "ready_in", None)
        wait = 0.0 if ready_in is None else float(ready_in(estimate))
        return (0, 0.0) if wait <= 0 else (None, wait)

    async def lease(self, worker: str, estimates: Sequence[int]) -> list[Grant]:
        """Permits for up to ``len(estimates)`` attempts of those token estimates: waits for the
        first, then takes each next one only if it may start now (no one waits for a batch)."""
        grants = [await self._grant(worker, estimates[0])]
        for estimate in estimates[1:]:
            index, _ = self._pick(estimate)
            if index is None:
                break
            grants.append(await self._take(worker, estimate, index))
        return grants

    async def _grant(self, worker: str, estimate: int) -> Grant:
        while True:
            index, wait = self._pick(estimate)
            if index is not None:
                return await self._take(worker, estimate, index)
            await self._until_freed(wait)

    async def _until_freed(self, wait: float) -> None:
        """Wait ``wait`` seconds, or less if a permit comes back first."""
        freed = asyncio.ensure_future(self._freed.wait())
        waits = {freed} if math.isinf(wait) else {freed, asyncio.ensure_future(self.sleep(wait))}
        self._waiting += 1
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiting -= 1
            for pending in waits:
                pending.cancel()

    async def _take(self, worker: str, estimate: int, index: int) -> Grant:
        endpoint = self.pool.endpoints[index]
        held = endpoint.limiter.permit(estimate)
        permit = await held.__aenter__()  # at once: the pick found it may start now
        endpoint.load += 1
        ticket = next(self._ids)
        self._out[ticket] = _Out(endpoint, held, permit, worker)
        return ticket, index

    async def finish(self, endings: Sequence[Ending]) -> list[int]:
        """Attempts ended: their real cost, headers and errors reach the limits. Returns the
        tickets whose 429 the limits judged evidence of a limit (back-pressure)."""
        pressed = []
        for ticket, tokens, headers, error in endings:
            if await self._release(ticket, tokens, headers, error):
                pressed.append(ticket)
        return pressed

    async def _release(
        self,
        ticket: int,
        tokens: int | None,
        headers: Mapping[str, str],
        error: Mapping[str, Any] | None,
        *,
        sent: bool = True,
    ) -> bool:
        """Hand a permit back; whether its attempt's error was a limit's 429."""
        out = self._out.pop(ticket, None)
        if out is None:  # already handed back for a dead worker
            return False
        out.endpoint.load -= 1
        if tokens is not None:
            out.permit.record(tokens=tokens, headers=headers)
        failure: CallError | None = None
        try:
            if error is None:
                await out.held.__aexit__(None, None, None)
            else:
                failure = error_from_dict(error)
                failure.headers = dict(headers)
                await out.held.__aexit__(type(failure), failure, None)
        finally:
            if sent:  # what the endpoint did, not what became of a worker
                self.pool.settled(out.endpoint, failure)
            if self._waiting:
                self._freed.set()
                self._freed = asyncio.Event()
        return failure is not None and is_back_pressure(failure)

    async def release_worker(self, worker: str) -> int:
        """Hand back every permit ``worker`` still holds, as failed attempts; how many."""
        tickets = [ticket for ticket, out in self._out.items() if out.worker == worker]
        gone = error_to_dict(NetworkError(f"worker {worker} stopped during the attempt"))
        for ticket in tickets:
            await self._release(ticket, None, {}, gone, sent=False)
        return len(tickets)

    def held(self) -> int:
        """Permits leased and not yet returned."""
        return len(self._out)

    def loads(self) -> list[int]:
        """Permits out, by endpoint: the shared view the choice is made by."""
        return [endpoint.load for endpoint in self.pool.endpoints]


class LeasedLimiter:
    """A ``Limiter`` on a worker whose permits are leased, in batches, from ``SharedLimits``.

    ``actor`` is the actor's handle: its methods are called as ``actor.lease.remote(...)`` and
    the result awaited. Each permit names its endpoint (``leased_member``); ``aclose`` hands back
    what is unused and sends what is left to send.
    """

    def __init__(self, actor: Any, worker: str, *, clock: Clock = time.monotonic) -> None:
        self.actor = actor
        self.worker = worker
        self.clock = clock
        self.leases = 0
        """Round trips made for permits (a measure of how far off the hot path the actor is)."""
        self._spare: deque[tuple[Grant, float]] = deque()  # leased, unused, and since when
        self._waiting: deque[tuple[asyncio.Future[Grant], int]] = deque()
        self._outbox: list[Ending] = []
        self._verdicts: dict[int, asyncio.Future[bool]] = {}  # 429s waiting for the actor's
        self._leasing: set[asyncio.Task[None]] = set()  # lease calls in flight
        self._asked = 0  # attempts those calls ask permits for
        self._paced = False  # the last lease came back with fewer permits than it asked for
        self._asking = False  # an _ask is due at the loop's next turn
        self._sending: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._recent = 0.0  # permits taken, decayed over RATE_WINDOW
        self._recent_at = clock()

    @asynccontextmanager
    async def permit(self, estimated_tokens: int) -> AsyncIterator[Permit]:
        ticket, member = await self._take(max(0, estimated_tokens))
        token = _member.set(member)
        recorder = Recorder()
        try:
            yield recorder
        except BaseException as exc:
            headers = recorder.headers or (exc.headers if isinstance(exc, CallError) else {})
            error = error_to_dict(exc) if isinstance(exc, Exception) else _cancelled()
            verdict = self._end(ticket, recorder.tokens, headers, error)
            if verdict is not None and await verdict:
                mark_back_pressure(exc)
            raise
        else:
            self._end(ticket, recorder.tokens, recorder.headers, None)
        finally:
            _member.reset(token)

    async def _take(self, estimate: int) -> Grant:
        now = self.clock()
        self._recent = self._recent * math.exp((self._recent_at - now) / RATE_WINDOW) + 1
        self._recent_at = now
        if self._spare:
            return self._spare.popleft()[0]
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        self._waiting.append((future, estimate))
        if not self._asking:  # at the next turn: every attempt that waits by then, in one lease
            self._asking = True
            asyncio.get_running_loop().call_soon(self._ask)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted as it was cancelled
                self._spare.appendleft((future.result(), self.clock()))
            raise

    def ahead(self) -> int:
        """Permits a lease takes beyond those waiting: the worker's recent rate, for a while."""
        return min(MOST_AHEAD, int(self._recent / RATE_WINDOW * LEASE_AHEAD))

    def _ask(self) -> None:
        """Start lease calls for the attempts waiting, until enough calls are at the actor."""
        self._asking = False
        while self._waiting and self._waiting[0][0].done():
            self._waiting.popleft()  # cancelled while waiting
        waiting = [estimate for future, estimate in self._waiting if not future.done()]
        while len(self._leasing) < min(MOST_LEASES if self._paced else 1, len(waiting)):
            uncovered = waiting[min(self._asked, len(waiting) - 1) :]
            typical = round(sum(uncovered) / len(uncovered))
            ahead = 0 if self._leasing else self.ahead()
            self._asked += len(uncovered)
            call = asyncio.create_task(self._lease(uncovered, [typical] * ahead))
            self._leasing.add(call)
            call.add_done_callback(self._leasing.discard)

    async def _lease(self, estimates: list[int], ahead: list[int]) -> None:
        try:
            grants: list[Grant] = await self.actor.lease.remote(self.worker, estimates + ahead)
        except Exception as exc:  # the actor is gone: every attempt waiting fails with it
            for future, _ in self._waiting:
                if not future.done():
                    future.set_exception(exc)
            self._waiting.clear()
            return
        finally:
            self._asked -= len(estimates)
        self.leases += 1
        if len(grants) < len(estimates):
            self._paced = True
        elif len(estimates) > 1:  # a lease of one, granted, says nothing either way
            self._paced = False
        now = self.clock()
        for grant in grants:
            while self._waiting and self._waiting[0][0].done():
                self._waiting.popleft()
            if self._waiting:
                self._waiting.popleft()[0].set_result(grant)
            else:
                self._spare.append((grant, now))
        self._expire_later()
        self._leasing.discard(asyncio.current_task())
        self._ask()

    def _end(
        self,
        ticket: int,
        tokens: int | None,
        headers: Mapping[str, str],
        error: Mapping[str, Any] | None,
    ) -> asyncio.Future[bool] | None:
        """Send an attempt's ending; for a 429, the future of the actor's verdict."""
        kept = {k: v for k, v in headers.items() if k.lower().startswith(KEPT_HEADERS)}
        self._outbox.append((ticket, tokens, kept, error))
        verdict = None
        if error is not None and error.get("kind") == ErrorKind.RATE_LIMITED.value:
            self._give_back(len(self._spare))  # the server said slow down: hoard nothing
            verdict = asyncio.get_running_loop().create_future()
            self._verdicts[ticket] = verdict
        self._send_soon()
        return verdict

    def _give_back(self, count: int) -> None:
        for _ in range(count):
            (ticket, _), _ = self._spare.popleft()
            self._outbox.append((ticket, None, {}, _unused()))

    def _expire_later(self) -> None:
        if self._spare and self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_later(LEASE_TTL, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        now = self.clock()
        stale = sum(1 for _, since in self._spare if now - since >= LEASE_TTL)
        if stale:
            self._give_back(stale)  # the oldest are first
            self._send_soon()
        self._expire_later()

    def _send_soon(self) -> None:
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while self._outbox:
            endings, self._outbox = self._outbox, []
            pressed: set[int] = set()
            try:
                pressed = set(await self.actor.finish.remote(endings) or ())
            finally:  # an actor gone says nothing: its 429s count as noise
                for ticket, *_ in endings:
                    verdict = self._verdicts.pop(ticket, None)
                    if verdict is not None and not verdict.done():
                        verdict.set_result(ticket in pressed)

    async def aclose(self) -> None:
        """Stop leasing, hand back what is unused, and wait until every ending is sent."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        for call in list(self._leasing):
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await call
        self._give_back(len(self._spare))
        self._send_soon()
        await self.flush()

    async def flush(self) -> None:
        """Wait until every ending so far has reached the actor."""
        while self._sending is not None and not self._sending.done():
            await self._sending

    def __repr__(self) -> str:
        return f"LeasedLimiter(worker={self.worker!r}, spare={len(self._spare)})"


def _cancelled() -> dict[str, Any]:
    return {"kind": "cancelled", "type": "Cancelled", "message": "cancelled", "retryable": False}


def _unused() -> dict[str, Any]:
    return {**_cancelled(), "message": "leased, not used"}


__all__ = [
    "KEPT_HEADERS",
    "LEASE_AHEAD",
    "LEASE_TTL",
    "Ending",
    "Grant",
    "LeasedLimiter",
    "LimiterFactory",
    "SharedLimits",
    "leased_member",
]
