"""One budget for many workers: the run's limiters in one named Ray actor, and their proxy.

``SharedLimits`` runs in a single actor and holds the run's limiters by name (``"run"``, or one
per endpoint): the very same ``Limits`` a one-process run uses, so pacing, ``x-ratelimit-*``
headers and AIMD behave exactly as they do there. Each worker talks to it through
``RemoteLimiter``, a ``Limiter`` whose permit is held in the actor from ``acquire`` to
``release``. A permit still held by a worker that died is handed back by ``release_worker``,
as a failed attempt, so a crash never leaks a slot.

Each permit costs two round trips to the actor (about a millisecond on one machine); a call
to a model lasts a hundred times longer.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fanwise.limits import Limiter, Permit
from fanwise.limits._core import Recorder
from fanwise.outcome import CallError, NetworkError, error_from_dict, error_to_dict

LimiterFactory = Callable[[], Limiter]
KEPT_HEADERS = ("x-ratelimit-", "retry-after")
"""Only these response headers travel to the actor: the ones limits read."""


class SharedLimits:
    """The run's limiters, by name; made a Ray actor by ``fanwise.cluster.engine``."""

    def __init__(self, factories: Mapping[str, LimiterFactory]) -> None:
        self.limiters = {name: build() for name, build in factories.items()}
        self._held: dict[int, tuple[AbstractAsyncContextManager[Permit], Permit, str]] = {}
        self._ids = itertools.count(1)

    async def acquire(self, name: str, worker: str, estimated_tokens: int) -> int:
        """Wait for a permit of limiter ``name``; its ticket number, for ``release``."""
        held = self.limiters[name].permit(estimated_tokens)
        permit = await held.__aenter__()
        ticket = next(self._ids)
        self._held[ticket] = (held, permit, worker)
        return ticket

    async def release(
        self,
        ticket: int,
        tokens: int | None,
        headers: Mapping[str, str],
        error: Mapping[str, Any] | None,
    ) -> None:
        """The attempt behind ``ticket`` ended: its real cost, headers and error, if any."""
        found = self._held.pop(ticket, None)
        if found is None:  # already handed back for a dead worker
            return
        held, permit, _ = found
        if tokens is not None:
            permit.record(tokens=tokens, headers=headers)
        if error is None:
            await held.__aexit__(None, None, None)
            return
        failure = error_from_dict(error)
        failure.headers = dict(headers)
        await held.__aexit__(type(failure), failure, None)

    async def release_worker(self, worker: str) -> int:
        """Hand back every permit ``worker`` still holds, as failed attempts; how many."""
        tickets = [t for t, (_, _, owner) in self._held.items() if owner == worker]
        gone = error_to_dict(NetworkError(f"worker {worker} stopped during the attempt"))
        for ticket in tickets:
            await self.release(ticket, None, {}, gone)
        return len(tickets)

    def held(self) -> int:
        """Permits handed out and not yet returned."""
        return len(self._held)


class RemoteLimiter:
    """A ``Limiter`` on a worker whose permits come from the ``SharedLimits`` actor."""

    def __init__(self, actor: Any, name: str, worker: str) -> None:
        self.actor = actor
        self.name = name
        self.worker = worker

    @asynccontextmanager
    async def permit(self, estimated_tokens: int) -> AsyncIterator[Permit]:
        pending = self.actor.acquire.remote(self.name, self.worker, estimated_tokens)
        try:
            ticket = await pending
        except asyncio.CancelledError:
            _cancel(pending)  # a permit granted after all is handed back by release_worker
            raise
        recorder = Recorder()
        try:
            yield recorder
        except BaseException as exc:
            headers = recorder.headers or (exc.headers if isinstance(exc, CallError) else {})
            error = error_to_dict(exc) if isinstance(exc, Exception) else _cancelled()
            await self._release(ticket, recorder.tokens, headers, error)
            raise
        await self._release(ticket, recorder.tokens, recorder.headers, None)

    async def _release(
        self,
        ticket: int,
        tokens: int | None,
        headers: Mapping[str, str],
        error: Mapping[str, Any] | None,
    ) -> None:
        kept = {k: v for k, v in headers.items() if k.lower().startswith(KEPT_HEADERS)}
        await asyncio.shield(self.actor.release.remote(ticket, tokens, kept, error))

    def __repr__(self) -> str:
        return f"RemoteLimiter({self.name!r}, worker={self.worker!r})"


def _cancelled() -> dict[str, Any]:
    return {"kind": "cancelled", "type": "Cancelled", "message": "cancelled", "retryable": False}


def _cancel(pending: Any) -> None:
    import ray  # only ever called on a Ray worker

    ray.cancel(pending)


__all__ = ["KEPT_HEADERS", "LimiterFactory", "RemoteLimiter", "SharedLimits"]
