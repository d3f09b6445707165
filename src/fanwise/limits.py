"""Limits on what may be sent, and when. One place decides.

A limiter hands out a permit before every attempt and is told how the attempt ended, so that it
can pace requests and tokens and adapt to the server's answers (429s, ``x-ratelimit-*``). The
permit's context exit sees the attempt's exception, if any.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class Permit(Protocol):
    """Handed out for one attempt; the engine reports the real cost once it is known."""

    def record(self, *, tokens: int, headers: Mapping[str, str]) -> None: ...


class Limiter(Protocol):
    def permit(self, estimated_tokens: int) -> AbstractAsyncContextManager[Permit]: ...


class _FreePermit:
    def record(self, *, tokens: int, headers: Mapping[str, str]) -> None:
        return None


class Unlimited:
    """No pacing: the engine's concurrency cap is the only limit."""

    @asynccontextmanager
    async def permit(self, estimated_tokens: int) -> AsyncIterator[Permit]:
        yield _FreePermit()


def estimate_tokens(text: str) -> int:
    """A cheap, deliberately generous guess (4 characters a token) made before the call."""
    return max(1, len(text) // 4 + 1)
