"""Limits on what may be sent, and when. One place decides.

``Limits`` runs any number of limits behind the engine's one ``permit()`` call: client buckets
(``Bucket.rpm``, ``Bucket.tpm``), pacing by the server's ``x-ratelimit-*`` headers
(``ServerPacing``) and AIMD concurrency (``AdaptiveConcurrency``). ``build_limiter`` assembles
the usual set from ``--rpm``, ``--tpm`` and adaptive on or off. See docs/resilience.md.
"""

from __future__ import annotations

import asyncio
import time

from fanwise.limits._adaptive import (
    AdaptiveConcurrency,
    Quota,
    ServerPacing,
    parse_duration,
    read_quotas,
)
from fanwise.limits._buckets import Bucket
from fanwise.limits._core import (
    Clock,
    Ending,
    Limit,
    Limiter,
    Limits,
    Permit,
    Sleep,
    Ticket,
    Unlimited,
    estimate_tokens,
)


def build_limiter(
    *,
    rpm: float | None = None,
    tpm: float | None = None,
    adaptive: bool = False,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> Limits | Unlimited:
    """The limiter for the given limits: client buckets first, then the adaptive pair."""
    limits: list[Limit] = []
    if rpm is not None:
        limits.append(Bucket.rpm(rpm))
    if tpm is not None:
        limits.append(Bucket.tpm(tpm))
    if adaptive:
        pacing = ServerPacing()
        limits += [pacing, AdaptiveConcurrency(pacing=pacing)]
    if not limits:
        return Unlimited()
    return Limits(*limits, clock=clock, sleep=sleep)


__all__ = [
    "AdaptiveConcurrency",
    "Bucket",
    "Clock",
    "Ending",
    "Limit",
    "Limiter",
    "Limits",
    "Permit",
    "Quota",
    "ServerPacing",
    "Sleep",
    "Ticket",
    "Unlimited",
    "build_limiter",
    "estimate_tokens",
    "parse_duration",
    "read_quotas",
]
