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

import logging
import math

from fanwise.limits._core import Ending, Ticket
from fanwise.limits._evidence import Evidence, Signal
from fanwise.limits._quotas import UNITS, Quota, read_quotas

_log = logging.getLogger("fanwise.limits")
_UNKNOWN = 1e9
"""The refill rate of a bucket whose report says nothing of it: none worth pacing by."""


class _Mirror:
    """Our estimate of one server bucket between two reports.

    A bucket refills continuously at ``rate``; a fixed window (``quota.window``) stays as it is
    until ``reset_at`` and is full again from then, every ``period`` seconds."""

    def __init__(
        self,
        quota: Quota,
        level: float,
        now: float,
        rate: float,
        *,
        reset_at: float | None = None,
        period: float = 1.0,
    ) -> None:
        self.limit = float(quota.limit)
        self.rate = rate
        self.level = min(self.limit, level)
        self.updated = now
        self.window = quota.window
        self.reset_at = reset_at
        self.period = period

    def refill(self, now: float) -> None:
        if self.window:
            if self.reset_at is not None and now >= self.reset_at:
                self.level = self.limit
                while self.reset_at <= now:
                    self.reset_at += self.period
        elif now > self.updated:
            self.level = min(self.limit, self.level + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def wait(self, cost: float, now: float) -> float:
        needed = min(cost, self.limit)
        if self.level >= needed:
            return 0.0
        if self.window:
            return max(0.0, (self.reset_at if self.reset_at is not None else now) - now)
        return (needed - self.level) / self.rate


class ServerPacing:
    """Pace attempts by the server's own rate-limit reports and a limit's ``Retry-After``.

    The rate a report implies is a hint, checked against evidence: when attempts the mirror let
    through are refused by a limit all the same (``STRIKES`` times, each after the last was seen,
    without ``FORGIVE`` of them answered in between), the headers do not mean what this reading
    of them assumes (a gateway whose ``reset`` is the time until the next request, a limit
    enforced over a shorter window than reported). The mirrors are dropped for the run, said once
    at debug level, and ``LearnedRate`` paces instead (``Evidence.headers_refuted``)."""

    STRIKES = 2
    FORGIVE = 50

    def __init__(self, evidence: Evidence | None = None) -> None:
        self.evidence = evidence or Evidence()
        self.mirrors: dict[str, _Mirror] = {}
        self.spent = dict.fromkeys(UNITS, 0.0)
        self.hold_until = -math.inf
        self.strikes = 0
        self._marks: dict[Ticket, dict[str, float]] = {}
        self._paced: dict[Ticket, float] = {}  # attempts a mirror let start, and when
        self._clean = 0  # of those answered since the last strike
        self._last_strike = -math.inf
        self._periods: dict[str, float] = {}  # the longest window reset seen, by unit

    @staticmethod
    def _cost(ticket: Ticket, unit: str) -> float:
        return 1.0 if unit == "requests" else float(ticket.tokens)

    def wait(self, ticket: Ticket, now: float) -> float:
        wait = self.hold_until - now
        for unit, mirror in self.mirrors.items():
            mirror.refill(now)
            wait = max(wait, mirror.wait(self._cost(ticket, unit), now))
        return max(0.0, wait)

    def started(self, ticket: Ticket, now: float) -> None:
        for unit in UNITS:
            self.spent[unit] += self._cost(ticket, unit)
        self._marks[ticket] = dict(self.spent)
        if self.mirrors:
            self._paced[ticket] = now
        for unit, mirror in self.mirrors.items():
            mirror.refill(now)
            mirror.level -= self._cost(ticket, unit)

    def finished(self, ticket: Ticket, ending: Ending, now: float) -> None:
        marks = self._marks.pop(ticket, self.spent)
        signal = self.evidence.judge(ticket, ending)
        self._check(self._paced.pop(ticket, None), signal, ending, now)
        quotas = {} if self.evidence.headers_refuted else read_quotas(ending.headers)
        for unit, quota in quotas.items():
            unseen = self.spent[unit] - marks[unit]  # started after this one reached the server
            self.mirrors[unit] = self._mirror(unit, quota, quota.remaining - unseen, now)
        windowed = any(quota.window for quota in quotas.values())
        if ending.retry_after is not None and signal is Signal.LIMIT and not windowed:
            self.hold_until = max(self.hold_until, now + ending.retry_after)

    def _mirror(self, unit: str, quota: Quota, level: float, now: float) -> _Mirror:
        old = self.mirrors.get(unit)
        if quota.window:
            reset = quota.reset if quota.reset is not None else 1.0
            period = quota.period or max(self._periods.get(unit, 1.0), reset)
            self._periods[unit] = period
            reset_at = now + reset
            if old is not None and old.reset_at is not None and old.reset_at > now:
                reset_at = min(reset_at, old.reset_at)  # whole seconds: each an upper bound
            pace = quota.limit / period
            return _Mirror(quota, level, now, pace, reset_at=reset_at, period=period)
        rate = quota.refill_rate()
        if rate is None and quota.reset == 0 and quota.remaining < quota.limit:
            # Not full, yet "reset: 0": not the time until full, whatever it is (the time until
            # the next request, say). Nothing to pace by until a report can be read; if the
            # limit binds, its 429s will refute the headers.
            rate = _UNKNOWN
        elif rate is None:
            rate = old.rate if old else quota.limit / 60.0
        elif quota.coarse and old is not None and not old.window and old.rate < _UNKNOWN:
            rate = old.rate + 0.3 * (rate - old.rate)  # a coarse report: average it in
        return _Mirror(quota, level, now, rate)

    def _check(self, paced: float | None, signal: Signal, ending: Ending, now: float) -> None:
        """Weigh the headers' reading against the answer of an attempt a mirror let start."""
        if paced is None or self.evidence.headers_refuted:
            return
        if signal is Signal.LIMIT:
            if paced > self._last_strike:  # began after the last strike was seen: a new one
                self.strikes += 1
                self._clean = 0
                self._last_strike = now
                if self.strikes >= self.STRIKES:
                    self._refute()
        elif ending.ok:
            self._clean += 1
            if self._clean >= self.FORGIVE:
                self.strikes = 0

    def _refute(self) -> None:
        _log.debug(
            "fanwise.limits: pacing by the server's rate-limit headers (%s) still drew 429s of "
            "a limit %d times: those headers are not followed for the rest of this run, a rate "
            "learned from the 429s paces instead",
            self,
            self.strikes,
        )
        self.evidence.headers_refuted = True
        self.mirrors.clear()
        self._paced.clear()

    def __repr__(self) -> str:
        known = ", ".join(
            f"{u}={m.level:.0f}/{m.limit:.0f} +{m.rate:.3g}/s" for u, m in self.mirrors.items()
        )
        refuted = "headers refuted" if self.evidence.headers_refuted else "no reports yet"
        return f"ServerPacing({known or refuted})"


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
