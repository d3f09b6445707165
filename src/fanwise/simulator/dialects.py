"""The rate-limit headers of each ``--limit-style``: the dialects real servers speak.

One limit, told many ways (issue 24). Every style enforces the same rate (``--rpm``, ``--tpm``);
they differ in what the answers say about it, and a few in how it is enforced:

- ``openai``: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, ``reset`` the time until
  the bucket is full (``"6m0s"``, ``"20ms"``); 429s with ``Retry-After`` and ``retry-after-ms``.
- ``next-request``: the same names, but ``reset`` is the time until the next request is allowed
  (what several gateways and proxies send); 0 while there is room.
- ``fixed-window-seconds`` / ``fixed-window-epoch``: a fixed window (a count per window of
  ``burst`` seconds, aligned to the wall clock, as nginx or Kong count), told by bare
  ``x-ratelimit-limit``, ``-remaining`` and ``-reset``: whole seconds until the window ends, or
  the Unix time it ends. Requests only; a whole-second ``Retry-After``.
- ``ietf``: the same window told by the IETF draft's ``RateLimit-Limit``, ``-Remaining``,
  ``-Reset`` (seconds) and ``RateLimit-Policy: 10;w=1``.
- ``anthropic``: ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``, ``reset`` an
  RFC 3339 time at which the bucket is full (to the millisecond); whole-second ``retry-after``.
- ``retry-after-only``: no rate header at all; a 429 says ``retry-after`` and ``retry-after-ms``.
- ``quantized``: OpenAI's headers report a bucket of a whole minute, which has room, while a
  bucket of ``burst`` seconds enforces the limit: a burst is refused all the same.
- ``proxy`` and ``gemini`` (no rate header; a whole-second ``Retry-After``, or Gemini's
  ``RetryInfo`` in the body) are as before.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from fanwise.simulator.ratelimit import (
    UNLIMITED,
    WINDOW_STYLES,
    FixedWindow,
    TokenBucket,
    format_duration,
)

Limit = TokenBucket | FixedWindow


def request_limit(
    style: str, rpm: int | None, now: float, *, burst: float, offset: float, empty: bool
) -> Limit:
    """What enforces the request limit for ``style``: a fixed window or a bucket."""
    if rpm is not None and style in WINDOW_STYLES:
        return FixedWindow(rpm, now, window=burst, offset=offset, empty=empty)
    level = 0.0 if empty and rpm is not None else None
    return TokenBucket(rpm or UNLIMITED, now, burst=burst, level=level)


def dialect_headers(
    style: str, requests: Limit, tokens: TokenBucket, reported: TokenBucket, wall: float
) -> dict[str, str]:
    """The rate-limit headers an answer of ``style`` carries (``wall``: Unix time now); every
    limit has been refilled to now."""
    if style == "openai":
        return {**_trio(requests, "requests"), **tokens.headers("tokens")}
    if style == "quantized":
        return {**reported.headers("requests"), **tokens.headers("tokens")}
    if style == "next-request":
        return {**_trio(requests, "requests", next_request=True), **_trio(tokens, "tokens", True)}
    if style == "anthropic":
        return {**_anthropic(requests, "requests", wall), **_anthropic(tokens, "tokens", wall)}
    if isinstance(requests, FixedWindow):
        return _window(style, requests)
    return {}


def _trio(limit: Limit, unit: str, next_request: bool = False) -> dict[str, str]:
    reset = limit.next_in() if next_request else limit.reset_in()
    return {
        f"x-ratelimit-limit-{unit}": str(limit.capacity),
        f"x-ratelimit-remaining-{unit}": str(limit.remaining()),
        f"x-ratelimit-reset-{unit}": format_duration(reset),
    }


def _anthropic(bucket: Limit, unit: str, wall: float) -> dict[str, str]:
    if bucket.limit >= UNLIMITED:
        return {}
    full = datetime.fromtimestamp(wall + bucket.reset_in(), UTC)
    when = full.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        f"anthropic-ratelimit-{unit}-limit": str(bucket.capacity),
        f"anthropic-ratelimit-{unit}-remaining": str(bucket.remaining()),
        f"anthropic-ratelimit-{unit}-reset": when,
    }


def _window(style: str, window: FixedWindow) -> dict[str, str]:
    limit, remaining = str(window.capacity), str(window.remaining())
    seconds = str(math.ceil(window.reset_in()))
    if style == "ietf":
        return {
            "ratelimit-limit": limit,
            "ratelimit-remaining": remaining,
            "ratelimit-reset": seconds,
            "ratelimit-policy": f"{window.capacity};w={window.window:g}",
        }
    reset = str(math.ceil(window.reset_at())) if style == "fixed-window-epoch" else seconds
    return {
        "x-ratelimit-limit": limit,
        "x-ratelimit-remaining": remaining,
        "x-ratelimit-reset": reset,
    }


__all__ = ["Limit", "dialect_headers", "request_limit"]
