"""Limits that learn the server's limits instead of being told: header pacing and AIMD.

``ServerPacing`` keeps a mirror of each server bucket (requests, tokens), reset by every
response's ``x-ratelimit-limit-*`` and ``x-ratelimit-remaining-*`` headers (errors' too) and
refilled at ``limit / 60`` a second in between. A response's ``remaining`` counts every request
that reached the server before it, so the attempts started after it are subtracted again; when
the mirror runs dry, the next attempt waits for the refill instead of being refused. A 429's
``Retry-After`` holds every new attempt until it has passed.

``AdaptiveConcurrency`` caps the attempts in flight as TCP caps its window: slow start (+1 per
success, so the window doubles every round trip) until the first 429, then additive increase
(+1 per window of successes) and multiplicative decrease (x0.5 per 429, once per window), so that
a run against a server that sends no headers still converges near its limit instead of hammering
it. Given the ``ServerPacing`` beside it, slow start also opens the window at once to the room the
server's last report leaves: doubling from 8 to 1,000 takes seven round trips that a server
reporting ample room need not cost (1.4 s at 0.2 s a call); the pacing still holds every attempt
the reports leave no room for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fanwise.limits._core import Ending, Ticket

UNITS = ("requests", "tokens")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_SCALE = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str) -> float | None:
    """OpenAI's durations (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``) or bare seconds."""
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


def read_quotas(headers: Mapping[str, str]) -> dict[str, Quota]:
    """The ``x-ratelimit-*`` quotas in ``headers``, by unit; units with a missing or bad header
    are left out."""
    lowered = {k.lower(): v for k, v in headers.items()}
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


class _Mirror:
    """Our estimate of one server bucket between two reports."""

    def __init__(self, quota: Quota, level: float, now: float) -> None:
        self.limit = float(quota.limit)
        self.rate = quota.limit / 60.0
        self.level = min(self.limit, level)
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.limit, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait(self, cost: float) -> float:
        needed = min(cost, self.limit)
        return max(0.0, (needed - self.level) / self.rate)


class ServerPacing:
    """Pace attempts by the server's own ``x-ratelimit-*`` reports and ``Retry-After``."""

    def __init__(self) -> None:
        self.mirrors: dict[str, _Mirror] = {}
        self.spent = dict.fromkeys(UNITS, 0.0)
        self.hold_until = -math.inf
        self._marks: dict[Ticket, dict[str, float]] = {}

    @staticmethod
    def _cost(ticket: Ticket, unit: str) -> float:
        return 1.0 if unit == "requests" else float(ticket.tokens)

    def wait(self, ticket: Ticket, now: float) -> float:
        wait = self.hold_until - now
        for unit, mirror in self.mirrors.items():
            mirror.refill(now)
            wait = max(wait, mirror.wait(self._cost(ticket, unit)))
        return max(0.0, wait)

    def started(self, ticket: Ticket, now: float) -> None:
        for unit in UNITS:
            self.spent[unit] += self._cost(ticket, unit)
        self._marks[ticket] = dict(self.spent)
        for unit, mirror in self.mirrors.items():
            mirror.refill(now)
            mirror.level -= self._cost(ticket, unit)

    def finished(self, ticket: Ticket, ending: Ending, now: float) -> None:
        marks = self._marks.pop(ticket, self.spent)
        for unit, quota in read_quotas(ending.headers).items():
            unseen = self.spent[unit] - marks[unit]  # started after this one reached the server
            self.mirrors[unit] = _Mirror(quota, quota.remaining - unseen, now)
        if ending.rate_limited and ending.retry_after is not None:
            self.hold_until = max(self.hold_until, now + ending.retry_after)

    def room(self, ticket: Ticket, now: float) -> float:
        """How many more attempts like ``ticket`` the server's reports leave room for now (0
        before the first report)."""
        room = math.inf if self.mirrors else 0.0
        for unit, mirror in self.mirrors.items():
            cost = self._cost(ticket, unit)
            if cost > 0:
                mirror.refill(now)
                room = min(room, mirror.level / cost)
        return max(0.0, room)

    def __repr__(self) -> str:
        known = ", ".join(f"{u}={m.level:.0f}/{m.limit:.0f}" for u, m in self.mirrors.items())
        return f"ServerPacing({known or 'no reports yet'})"


class AdaptiveConcurrency:
    """AIMD on the number of attempts in flight, with TCP's slow start.

    ``pacing``, when given, is the ``ServerPacing`` that runs before this limit: during slow
    start a success then opens the window to what is in flight plus the room its mirror of the
    server reports, if that is more than +1.
    """

    def __init__(
        self,
        initial: float = 8,
        *,
        minimum: float = 1,
        maximum: float = 1024,
        increase: float = 1.0,
        decrease: float = 0.5,
        pacing: ServerPacing | None = None,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(
                f"need 1 <= minimum <= initial <= maximum, got {minimum}, {initial}, {maximum}"
            )
        if increase <= 0 or not 0 < decrease < 1:
            raise ValueError("increase must be above 0 and decrease between 0 and 1")
        self.limit = float(initial)
        self.minimum = float(minimum)
        self.maximum = float(maximum)
        self.increase = increase
        self.decrease = decrease
        self.pacing = pacing
        self.in_flight = 0
        self.slow_start = True
        self.decreases = 0
        self._epoch = 0
        self._fills = 0
        self._marks: dict[Ticket, tuple[int, int]] = {}

    def wait(self, ticket: Ticket, now: float) -> float:
        return 0.0 if self.in_flight < int(self.limit) else math.inf

    def started(self, ticket: Ticket, now: float) -> None:
        self.in_flight += 1
        self._marks[ticket] = (self._epoch, self._fills)
        if self.in_flight >= int(self.limit):
            self._fills += 1

    def finished(self, ticket: Ticket, ending: Ending, now: float) -> None:
        epoch, fills = self._marks.pop(ticket, (self._epoch, self._fills))
        # Only a window in use may grow: it was full at some point during this attempt.
        # (Otherwise a cap that another limit, or the engine, keeps idle would grow forever.)
        used = self._fills > fills
        self.in_flight -= 1
        if ending.rate_limited:
            # One cut per window: the 429s of attempts sent before the last cut say nothing new.
            if epoch == self._epoch:
                in_use = min(self.limit, self.in_flight + 1.0)
                self.limit = max(self.minimum, in_use * self.decrease)
                self.slow_start = False
                self.decreases += 1
                self._epoch += 1
        elif ending.ok and used:
            if not self.slow_start:
                self.limit = min(self.maximum, self.limit + self.increase / self.limit)
                return
            grown = self.limit + self.increase
            if self.pacing is not None:  # its finished() ran first: the mirror is this report's
                grown = max(grown, self.in_flight + self.pacing.room(ticket, now))
            self.limit = min(self.maximum, grown)

    def __repr__(self) -> str:
        phase = "slow start" if self.slow_start else "AIMD"
        return f"AdaptiveConcurrency(limit={self.limit:.2f}, {phase})"
