"""What a server reports about its limits, in each dialect of rate-limit headers, and durations."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

UNITS = ("requests", "tokens")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_SCALE = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


# Every answer's reset headers come here, and servers repeat a few values ("1s", "6m0s"):
# cached, the two per answer cost ~1 µs instead of ~14 µs each (cProfile of `fanwise batch`,
# 10,000 calls).
@functools.lru_cache(maxsize=1024)
def parse_duration(text: str) -> float | None:
    """OpenAI's and Google's durations (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"45.8s"``) or bare
    seconds."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _SCALE[unit] for number, unit in parts)


@dataclass(frozen=True, slots=True)
class Quota:
    """One server bucket as a response reported it; ``reset`` is seconds until it is full.

    ``window`` says the bucket is a fixed window: it stays as it is until ``reset``, then holds
    ``limit`` again (bare ``x-ratelimit-*``, the IETF draft's ``RateLimit-*``); ``period`` is the
    window's length when the server says it (``RateLimit-Policy: 10;w=1``). Otherwise it refills
    continuously and ``reset`` is when it is full (OpenAI's, Anthropic's).
    """

    limit: int
    remaining: int
    reset: float | None = None
    window: bool = False
    period: float | None = None

    def refill_rate(self) -> float | None:
        """Units a second: what is missing over the time until full (a window's limit over its
        period). None when the report cannot tell: nothing missing, no reset, or a window of
        unknown length. ``remaining`` is rounded down, so on average half a unit more is missing
        than it says; under ``MIN_MISSING`` missing, that rounding is over 5 % of the figure,
        and the caller should average it with what it knew."""
        if self.window:
            return self.limit / self.period if self.period else None
        missing = self.limit - self.remaining
        if self.reset is None or self.reset <= 0 or missing < 1:
            return None
        return (missing - 0.5) / self.reset

    @property
    def coarse(self) -> bool:
        """Too few units missing for the rate to be read to 5 %."""
        return self.limit - self.remaining < MIN_MISSING


MIN_MISSING = 20
EPOCH = 1e8
"""A bare ``x-ratelimit-reset`` above this is a Unix time (GitHub's), not seconds (Kong's)."""
_PARAM = re.compile(r"\b([qrtw])=(\d+(?:\.\d*)?)")


def read_quotas(headers: Mapping[str, str], wall: float | None = None) -> dict[str, Quota]:
    """The quotas in ``headers``, by unit, in every dialect fanwise knows (docs/resilience.md):
    OpenAI's ``x-ratelimit-*-{requests,tokens}``; Anthropic's ``anthropic-ratelimit-*`` (RFC
    3339 resets); a fixed window's bare ``x-ratelimit-limit/remaining/reset`` (seconds, or a Unix
    time); the IETF draft's ``RateLimit-Limit/Remaining/Reset`` with ``RateLimit-Policy``, or its
    later ``RateLimit: "name";r=..;t=..``. Units with a missing or bad header are left out.
    ``wall`` is the Unix time now (for absolute resets)."""
    if not headers:
        return {}
    # Every answer passes here: lower-case only the few names that can be ours.
    lowered = {k.lower(): v for k, v in headers.items() if "imit" in k or "IMIT" in k}
    if not lowered:
        return {}
    quotas: dict[str, Quota] = {}
    for unit in UNITS:
        quota = _openai(lowered, unit) or _anthropic(lowered, unit, wall)
        if quota is not None:
            quotas[unit] = quota
    if "requests" not in quotas:
        window = _window(lowered, wall) or _ietf(lowered)
        if window is not None:
            quotas["requests"] = window
    return quotas


def _quota(
    limit_text: str | None,
    remaining_text: str | None,
    reset: float | None,
    *,
    window: bool = False,
    period: float | None = None,
) -> Quota | None:
    if limit_text is None or remaining_text is None:
        return None
    try:
        limit = int(float(_first(limit_text)))
        remaining = int(float(_first(remaining_text)))
    except ValueError:
        return None
    if limit <= 0:
        return None
    return Quota(limit, max(0, min(remaining, limit)), reset, window, period)


def _first(text: str) -> str:
    """The first figure of a list (``"10, 10;w=1"``)."""
    return text.split(",")[0].split(";")[0].strip()


def _openai(lowered: Mapping[str, str], unit: str) -> Quota | None:
    reset_text = lowered.get(f"x-ratelimit-reset-{unit}")
    reset = parse_duration(reset_text) if reset_text is not None else None
    limit = lowered.get(f"x-ratelimit-limit-{unit}")
    return _quota(limit, lowered.get(f"x-ratelimit-remaining-{unit}"), reset)


def _anthropic(lowered: Mapping[str, str], unit: str, wall: float | None) -> Quota | None:
    name = f"anthropic-ratelimit-{unit}"
    limit = lowered.get(f"{name}-limit")
    if limit is None:
        return None
    reset = _until(lowered.get(f"{name}-reset"), wall)
    return _quota(limit, lowered.get(f"{name}-remaining"), reset)


def _until(text: str | None, wall: float | None) -> float | None:
    """Seconds from now until an RFC 3339 time; None when unreadable."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if wall is None else wall))


def _window(lowered: Mapping[str, str], wall: float | None) -> Quota | None:
    limit = lowered.get("x-ratelimit-limit")
    if limit is None:
        return None
    reset: float | None = None
    try:
        value = float(lowered.get("x-ratelimit-reset", ""))
    except ValueError:
        pass
    else:
        now = time.time() if wall is None else wall
        reset = max(0.0, value - now) if value > EPOCH else max(0.0, value)
    return _quota(limit, lowered.get("x-ratelimit-remaining"), reset, window=True)


def _ietf(lowered: Mapping[str, str]) -> Quota | None:
    policy = dict(_PARAM.findall(lowered.get("ratelimit-policy", "")))
    period = float(policy["w"]) if "w" in policy else None
    if "ratelimit-limit" in lowered:
        reset = _seconds(lowered.get("ratelimit-reset"))
        limit, remaining = lowered["ratelimit-limit"], lowered.get("ratelimit-remaining")
        return _quota(limit, remaining, reset, window=True, period=period)
    current = dict(_PARAM.findall(lowered.get("ratelimit", "")))
    if "r" not in current or "q" not in policy:  # the later draft: RateLimit: "x";r=5;t=2
        return None
    reset = float(current["t"]) if "t" in current else None
    return _quota(policy["q"], current["r"], reset, window=True, period=period)


def _seconds(text: str | None) -> float | None:
    try:
        return max(0.0, float(_first(text))) if text is not None else None
    except ValueError:
        return None


__all__ = ["UNITS", "Quota", "parse_duration", "read_quotas"]
