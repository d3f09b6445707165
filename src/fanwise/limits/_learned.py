"""Pacing for a limit the server does not report: a request rate learned from its 429s.

A proxy or a self-hosted server may enforce a rate and say nothing of it but 429 and
``Retry-After``; and a server whose headers ``ServerPacing`` found misleading
(``Evidence.headers_refuted``) is treated as one that says nothing. Halving the window does
not find such a limit (at a window of 1 or 2, every probe past the rate is a 429), so once
``Evidence`` shows a limit on answers without rate-limit headers, attempts are spaced evenly
at a rate ``r``:

- it starts at the rate the server answered at over the last ``SPAN`` seconds (at least
  ``MINIMUM`` a second, or the inverse of the 429's wait when that wait is computed to the
  millisecond: a bucket's time to its next unit), and grows by ``startup`` per success (about
  x1.6 a second) until the first cut, then by ``growth`` (about 5 % a second): multiplicative
  increase, since the success rate is the rate itself;
- a 429 of an attempt sent after the last cut multiplies it by ``decrease``, once per window of
  attempts, as AIMD does.

The server's bucket keeps what a slower pace leaves unused and the faster one spends it, so the
run still moves at the server's rate; the 429s are the one or two that end each cycle. Before any
such evidence the limit is off and costs nothing.
"""

from __future__ import annotations

from collections import deque

from fanwise.limits._core import Ending, Ticket
from fanwise.limits._evidence import Evidence, Signal
from fanwise.limits._quotas import read_quotas


class LearnedRate:
    """Space attempts at a rate learned from the 429s of a server that reports no limit."""

    SPAN = 2.0
    MINIMUM = 0.5

    def __init__(
        self,
        evidence: Evidence | None = None,
        *,
        startup: float = 0.5,
        growth: float = 0.05,
        decrease: float = 0.7,
    ) -> None:
        if startup <= 0 or growth <= 0 or not 0 < decrease < 1:
            raise ValueError("startup and growth must be above 0 and decrease between 0 and 1")
        self.evidence = evidence or Evidence()
        self.startup = startup
        self.growth = growth
        self.decrease = decrease
        self.rate: float | None = None
        """Attempts a second once a limit has been seen; None before."""
        self.cuts = 0
        self._next = 0.0
        self._epoch = 0
        self._marks: dict[Ticket, int] = {}
        self._answers: deque[float] = deque()

    def wait(self, ticket: Ticket, now: float) -> float:
        return 0.0 if self.rate is None else max(0.0, self._next - now)

    def started(self, ticket: Ticket, now: float) -> None:
        if self.rate is not None:
            self._next = max(self._next, now) + 1.0 / self.rate
            self._marks[ticket] = self._epoch

    def finished(self, ticket: Ticket, ending: Ending, now: float) -> None:
        epoch = self._marks.pop(ticket, None)
        signal = self.evidence.judge(ticket, ending)
        if ending.ok:
            if self.rate is None:
                self._answers.append(now)
                self._forget(now)
            else:
                self.rate += self.startup if self.cuts == 0 else self.growth
            return
        if signal is not Signal.LIMIT:
            return  # noise
        if not self.evidence.headers_refuted and read_quotas(ending.headers):
            return  # a limit the server reports: ServerPacing paces by that
        if self.rate is None:
            self._forget(now)
            wait = ending.retry_after
            # A wait computed to the millisecond is the bucket's time to its next unit: at
            # most one unit's refill, so its inverse is a first guess at the rate, when the
            # first 429s come before any answer to count.
            hint = 1.0 / wait if wait and self.evidence.computed(wait) else 0.0
            self.rate = max(self.MINIMUM, len(self._answers) / self.SPAN, hint)
            self._next = now
            self._epoch += 1
        elif epoch == self._epoch:
            self.rate = max(self.MINIMUM, self.rate * self.decrease)
            self.cuts += 1
            self._epoch += 1

    def _forget(self, now: float) -> None:
        """Keep only the successes of the last ``SPAN`` seconds."""
        while self._answers and self._answers[0] < now - self.SPAN:
            self._answers.popleft()

    def __repr__(self) -> str:
        pace = "off" if self.rate is None else f"{self.rate:.3g}/s, {self.cuts} cuts"
        return f"LearnedRate({pace})"
