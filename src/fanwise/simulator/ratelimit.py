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
    """``limit`` units a minute, refilled continuously; ``now`` comes from the caller's clock.

    It holds ``burst`` seconds of that rate (a minute, as OpenAI runs it: ``capacity`` is then
    ``limit``), and starts full unless ``level`` says otherwise (0: it starts empty).
    """

    def __init__(
        self, limit: int, now: float, *, burst: float = 60.0, level: float | None = None
    ) -> None:
        self.limit = limit
        self.rate = limit / 60.0
        self.capacity = max(1, round(self.rate * burst)) if limit < UNLIMITED else limit
        self.level = float(self.capacity if level is None else min(level, self.capacity))
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(float(self.capacity), self.level + (now - self.updated) * self.rate)
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
        return (self.capacity - self.level) / self.rate

    def next_in(self) -> float:
        """Seconds until one more unit is there: what some gateways report as ``reset``."""
        return self.wait_for(1)

    def headers(self, unit: str) -> dict[str, str]:
        """The ``x-ratelimit-*-{unit}`` trio of headers for this bucket."""
        return {
            f"x-ratelimit-limit-{unit}": str(self.capacity),
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


LIMIT_STYLES = (
    "openai",
    "proxy",
    "gemini",
    "next-request",
    "fixed-window-seconds",
    "fixed-window-epoch",
    "ietf",
    "anthropic",
    "retry-after-only",
    "quantized",
)
"""How a server says it is limiting (``fanwise.simulator.dialects``): OpenAI's ``x-ratelimit-*``
headers with ``Retry-After`` and ``retry-after-ms``; a proxy's bare whole-second ``Retry-After``;
Gemini's ``RetryInfo`` in the 429's body and no header at all; and the dialects of issue 24."""

WINDOW_STYLES = ("fixed-window-seconds", "fixed-window-epoch", "ietf")
"""Styles whose request limit is a fixed window (a count per window), not a bucket."""

EXACT_RETRY = ("openai", "next-request", "quantized", "retry-after-only")
"""Styles whose 429s say ``retry-after-ms`` beside the whole-second ``Retry-After``."""


class FixedWindow:
    """``quota`` requests in each window of ``window`` seconds, windows aligned to the wall
    clock (``now + offset`` is Unix time), as a fixed-window counter (nginx, Kong) runs them.
    It offers ``TokenBucket``'s methods, so the simulator asks either the same way."""

    def __init__(
        self, limit: int, now: float, *, window: float, offset: float, empty: bool = False
    ) -> None:
        self.limit = limit
        self.window = window
        self.offset = offset
        self.capacity = max(1, round(limit / 60.0 * window))
        self.index = self._index(now)
        self.used = self.capacity if empty else 0
        self.now = now

    def _index(self, now: float) -> int:
        return math.floor((now + self.offset) / self.window)

    def refill(self, now: float) -> None:
        index = self._index(now)
        if index > self.index:
            self.index, self.used = index, 0
        self.now = now

    def wait_for(self, amount: int) -> float:
        return 0.0 if self.used + amount <= self.capacity else self.reset_in()

    def take(self, amount: int) -> None:
        self.used += amount

    def remaining(self) -> int:
        return max(0, self.capacity - self.used)

    def reset_at(self) -> float:
        """When the window ends, in Unix seconds."""
        return (self.index + 1) * self.window

    def reset_in(self) -> float:
        return max(0.0, self.reset_at() - (self.now + self.offset))

    next_in = reset_in


RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def retry_headers(seconds: float, style: str) -> dict[str, str]:
    """The headers that ask a client to wait ``seconds``, as a server of ``style`` sends them."""
    if style in EXACT_RETRY:
        return format_retry_after(seconds)
    if style == "gemini":
        return {}
    return {"retry-after": str(max(0, math.ceil(seconds)))}


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
    "EXACT_RETRY",
    "LIMIT_STYLES",
    "UNLIMITED",
    "WINDOW_STYLES",
    "FixedWindow",
    "TokenBucket",
    "format_duration",
    "format_retry_after",
    "retry_headers",
    "styled_error",
]
