"""Limits that learn the server's limits instead of being told: header pacing and AIMD.

``ServerPacing`` keeps a mirror of each server bucket (requests, tokens), reset by every
response's ``x-ratelimit-limit-*``, ``-remaining-*`` and ``-reset-*`` headers (errors' too) and
refilled in between at the rate the reports give: what is missing over the time until full
(``limit / 60`` a second when the report cannot tell). A response's ``remaining`` counts every
request that reached the server before it, so the attempts started after it are subtracted
again; when the mirror runs dry, the next attempt waits for the refill instead of being refused.
A 429 that is evidence of a limit (``Evidence``) holds every new attempt for its
``Retry-After``; an isolated one holds only its own call, through the retry policy.

``AdaptiveConcurrency`` caps the attempts in flight as TCP caps its window, but starts wide open
(at ``maximum``, or ``initial`` when given): the engine's ``--concurrency`` is the user's choice
and nothing is known against it until a limit shows. Evidence of one halves the window, once per
window (the 429s of attempts sent before the last cut say nothing new); every success of a full
window adds ``1 / window``, about one per round trip.
"""

from __future__ import annotations

import math

from fanwise.limits._core import Ending, Ticket
from fanwise.limits._evidence import Evidence, Signal
from fanwise.limits._quotas import UNITS, Quota, read_quotas


class _Mirror:
    """Our estimate of one server bucket between two reports."""

    def __init__(self, quota: Quota, level: float, now: float, rate: float) -> None:
        self.limit = float(quota.limit)
        self.rate = rate
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
    """Pace attempts by the server's own ``x-ratelimit-*`` reports and a limit's
    ``Retry-After``."""

    def __init__(self, evidence: Evidence | None = None) -> None:
        self.evidence = evidence or Evidence()
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
        signal = self.evidence.judge(ticket, ending)
        for unit, quota in read_quotas(ending.headers).items():
            unseen = self.spent[unit] - marks[unit]  # started after this one reached the server
            old = self.mirrors.get(unit)
            rate = quota.refill_rate() or (old.rate if old else quota.limit / 60.0)
            self.mirrors[unit] = _Mirror(quota, quota.remaining - unseen, now, rate)
        if ending.retry_after is not None and signal is Signal.LIMIT:
            self.hold_until = max(self.hold_until, now + ending.retry_after)

    def __repr__(self) -> str:
        known = ", ".join(
            f"{u}={m.level:.0f}/{m.limit:.0f} +{m.rate:.3g}/s" for u, m in self.mirrors.items()
        )
        return f"ServerPacing({known or 'no reports yet'})"


class AdaptiveConcurrency:
    """AIMD on the number of attempts in flight, cut only on evidence of a limit."""

    def __init__(
        self,
        initial: float | None = None,
        *,
        minimum: float = 1,
        maximum: float = 1024,
        increase: float = 1.0,
        decrease: float = 0.5,
        evidence: Evidence | None = None,
    ) -> None:
        start = maximum if initial is None else initial
        if not 1 <= minimum <= start <= maximum:
            raise ValueError(
                f"need 1 <= minimum <= initial <= maximum, got {minimum}, {start}, {maximum}"
            )
        if increase <= 0 or not 0 < decrease < 1:
            raise ValueError("increase must be above 0 and decrease between 0 and 1")
        self.limit = float(start)
        self.minimum = float(minimum)
        self.maximum = float(maximum)
        self.increase = increase
        self.decrease = decrease
        self.evidence = evidence or Evidence()
        self.in_flight = 0
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
        self.in_flight -= 1
        signal = self.evidence.judge(ticket, ending)
        if signal is Signal.LIMIT:
            # One cut per window: the 429s of attempts sent before the last cut say nothing new.
            if epoch == self._epoch:
                in_use = min(self.limit, self.in_flight + 1.0)
                self.limit = max(self.minimum, in_use * self.decrease)
                self.decreases += 1
                self._epoch += 1
        elif ending.ok and self.limit < self.maximum and self._fills > fills:
            # Only a window in use may grow: it was full at some point during this attempt.
            # (Otherwise a cap that another limit, or the engine, keeps idle would grow forever.)
            self.limit = min(self.maximum, self.limit + self.increase / self.limit)

    def __repr__(self) -> str:
        return f"AdaptiveConcurrency(limit={self.limit:.2f}, {self.decreases} cuts)"
