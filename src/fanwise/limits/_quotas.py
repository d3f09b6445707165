"""What a server reports about its limits: the ``x-ratelimit-*`` headers and their durations."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

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
    """One server bucket as a response reported it; ``reset`` is seconds until it is full."""

    limit: int
    remaining: int
    reset: float | None = None

    def refill_rate(self) -> float | None:
        """Units a second: what is missing over the time until full. None when the report is
        too coarse (under ``MIN_MISSING`` units missing, rounding would be over 5 % of it).
        ``remaining`` is rounded down, so on average half a unit more is missing than it says."""
        missing = self.limit - self.remaining
        if self.reset is None or self.reset <= 0 or missing < MIN_MISSING:
            return None
        return (missing - 0.5) / self.reset


MIN_MISSING = 20


def read_quotas(headers: Mapping[str, str]) -> dict[str, Quota]:
    """The ``x-ratelimit-*`` quotas in ``headers``, by unit; units with a missing or bad header
    are left out."""
    if not headers:
        return {}
    # Every answer passes here: lower-case only the few names that can be ours.
    lowered = {k.lower(): v for k, v in headers.items() if k[:2] in ("x-", "X-")}
    quotas: dict[str, Quota] = {}
    for unit in UNITS:
        try:
            limit = int(float(lowered[f"x-ratelimit-limit-{unit}"]))
            remaining = int(float(lowered[f"x-ratelimit-remaining-{unit}"]))
        except (KeyError, ValueError):
            continue
        if limit > 0:
            reset_text = lowered.get(f"x-ratelimit-reset-{unit}")
            reset = parse_duration(reset_text) if reset_text is not None else None
            quotas[unit] = Quota(limit, max(0, min(remaining, limit)), reset)
    return quotas


__all__ = ["UNITS", "Quota", "parse_duration", "read_quotas"]
