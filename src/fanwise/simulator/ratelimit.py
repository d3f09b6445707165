"""Request and token buckets as OpenAI runs them, and the ``x-ratelimit-*`` headers they report.

A bucket holds up to a minute's allowance and refills continuously (``limit / 60`` a second), so
a client that paces itself evenly is never refused, and one that bursts is refused until the
bucket has refilled enough for its request.
"""

from __future__ import annotations

import math
from typing import Any

UNLIMITED = 1_000_000_000
"""The nominal limit reported when none is configured; never reached in practice."""


class TokenBucket:
    """``limit`` units a minute, refilled continuously; ``now`` comes from the caller's clock."""

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.rate = limit / 60.0
        self.level = float(limit)
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(float(self.limit), self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_for(self, amount: int) -> float:
        """Seconds until ``amount`` units are available (0 if they are now); call after refill."""
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, amount: int) -> None:
        self.level -= amount

    def remaining(self) -> int:
        return max(0, int(self.level))

    def reset_in(self) -> float:
        """Seconds until the bucket is full again: what OpenAI reports as ``reset``."""
        return (self.limit - self.level) / self.rate

    def headers(self, unit: str) -> dict[str, str]:
        """The ``x-ratelimit-*-{unit}`` trio of headers for this bucket."""
        return {
            f"x-ratelimit-limit-{unit}": str(self.limit),
            f"x-ratelimit-remaining-{unit}": str(self.remaining()),
            f"x-ratelimit-reset-{unit}": format_duration(self.reset_in()),
        }


def format_duration(seconds: float) -> str:
    """Seconds written as OpenAI (and Go) write a duration: ``"20ms"``, ``"1.5s"``, ``"6m0s"``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    millis = math.ceil(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def format_retry_after(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds (rounded up, as HTTP requires); ``retry-after-ms`` exact."""
    return {
        "retry-after": str(max(0, math.ceil(seconds))),
        "retry-after-ms": str(max(0, math.ceil(seconds * 1000))),
    }


LIMIT_STYLES = ("openai", "proxy", "gemini")
"""How a server says it is limiting: OpenAI's ``x-ratelimit-*`` headers with ``Retry-After`` and
``retry-after-ms``; a proxy's bare whole-second ``Retry-After``; Gemini's ``RetryInfo`` in the
429's body and no header at all."""

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def retry_headers(seconds: float, style: str) -> dict[str, str]:
    """The headers that ask a client to wait ``seconds``, as a server of ``style`` sends them."""
    if style == "openai":
        return format_retry_after(seconds)
    if style == "proxy":
        return {"retry-after": str(max(0, math.ceil(seconds)))}
    return {}


def styled_error(body: dict[str, Any], seconds: float | None, style: str) -> Any:
    """An error body as a server of ``style`` shapes it: Gemini wraps it in a list and says
    how long to wait in ``details``."""
    if style != "gemini":
        return body
    error = dict(body["error"])
    if seconds is not None:
        error["details"] = [{"@type": RETRY_INFO, "retryDelay": f"{seconds:.3f}s"}]
    return [{"error": error}]


__all__ = [
    "LIMIT_STYLES",
    "UNLIMITED",
    "TokenBucket",
    "format_duration",
    "format_retry_after",
    "retry_headers",
    "styled_error",
]
