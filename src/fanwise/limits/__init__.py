"""Limits on what may be sent, and when. One place decides.

``Limits`` runs any number of limits behind the engine's one ``permit()`` call: client buckets
(``Bucket.rpm``, ``Bucket.tpm``), pacing by the server's ``x-ratelimit-*`` headers
(``ServerPacing``), a rate learned from a silent server's 429s (``LearnedRate``) and AIMD
concurrency (``AdaptiveConcurrency``); the last three act only on ``Evidence`` of a limit.
``build_limiter`` assembles the usual set from ``--rpm``, ``--tpm`` and adaptive on or off.
See docs/resilience.md.
"""

from __future__ import annotations

import asyncio
import time

from fanwise.limits._adaptive import AdaptiveConcurrency, ServerPacing
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
from fanwise.limits._estimate import request_tokens
from fanwise.limits._evidence import Evidence, Signal
from fanwise.limits._learned import LearnedRate
from fanwise.limits._pressure import is_back_pressure, mark_back_pressure
from fanwise.limits._quotas import Quota, parse_duration, read_quotas


def build_limiter(
    *,
    rpm: float | None = None,
    tpm: float | None = None,
    adaptive: bool = False,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> Limits | Unlimited:
    """The limiter for the given limits: client buckets first, then the adaptive three, which
    share one ``Evidence``."""
    limits: list[Limit] = []
    if rpm is not None:
        limits.append(Bucket.rpm(rpm))
    if tpm is not None:
        limits.append(Bucket.tpm(tpm))
    evidence: Evidence | None = None
    if adaptive:
        evidence = Evidence()
        limits += [
            ServerPacing(evidence),
            LearnedRate(evidence),
            AdaptiveConcurrency(evidence=evidence),
        ]
    if not limits:
        return Unlimited()
    return Limits(*limits, clock=clock, sleep=sleep, evidence=evidence)


__all__ = [
    "AdaptiveConcurrency",
    "Bucket",
    "Clock",
    "Ending",
    "Evidence",
    "LearnedRate",
    "Limit",
    "Limiter",
    "Limits",
    "Permit",
    "Quota",
    "ServerPacing",
    "Signal",
    "Sleep",
    "Ticket",
    "Unlimited",
    "build_limiter",
    "estimate_tokens",
    "is_back_pressure",
    "mark_back_pressure",
    "parse_duration",
    "read_quotas",
    "request_tokens",
]
