"""Telling a quota from noise: is a 429 evidence of a limit, or an isolated refusal?

An overloaded shared endpoint answers a random share of requests 429 with a short
``Retry-After`` whatever the load; a quota refuses what goes past it, and more the harder it is
pushed. Shrinking the window for the first costs throughput and buys nothing, so a 429 counts as
evidence of a limit only when

- its ``x-ratelimit-remaining-*`` headers leave no room for the attempt (the bucket is dry),
- it asks for a long pause (``Retry-After`` of ``LONG_WAIT`` seconds or more),
- it asks for a pause computed to the millisecond, not in whole seconds (``retry-after-ms: 83``,
  Gemini's ``retryDelay: "0.083s"``): a bucket's time to its next unit, or
- 429s repeat with the load: ``PATTERN`` of the last ``WINDOW`` answers were 429s. Random
  refusals at 30 % reach that about once in 10^5 windows; a limit exceeded twofold, at once.
  Once seen, the pattern marks every later 429 as a limit's.

Anything else (a 429 among successes, headers that report room) is noise: the call waits its
``Retry-After`` and tries again, and the limits stay as they are.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING

from fanwise.limits._quotas import read_quotas

if TYPE_CHECKING:  # _core imports this module: the verdict marks back-pressure there
    from fanwise.limits._core import Ending, Ticket


class Signal(enum.Enum):
    """What one finished attempt says about a limit."""

    NONE = "none"  # not a 429
    NOISE = "noise"  # a 429 that says nothing about a limit
    LIMIT = "limit"  # a 429 that is evidence of one


class Evidence:
    """Judges each finished attempt once; the adaptive limits that share it read its verdict."""

    WINDOW = 30
    PATTERN = 20
    LONG_WAIT = 10.0
    """Seconds of ``Retry-After`` from which a 429 is a pause the whole run should take."""

    def __init__(self) -> None:
        self.recent: deque[bool] = deque(maxlen=self.WINDOW)
        self.refusals = 0  # 429s among ``recent``
        self.pattern_seen = False
        self.limits_seen = 0
        self.headers_refuted = False
        """Set by ``ServerPacing`` when pacing by the rate-limit headers still drew a limit's
        429s: ``LearnedRate`` then paces, headers or not."""
        self._last: tuple[Ticket, Signal] | None = None

    def judge(self, ticket: Ticket, ending: Ending) -> Signal:
        """The verdict on ``ticket``'s attempt; asking again for the same ticket is free."""
        if self._last is not None and self._last[0] is ticket:
            return self._last[1]
        signal = self._judge(ticket, ending)
        self._last = (ticket, signal)
        if signal is Signal.LIMIT:
            self.limits_seen += 1
        return signal

    def _judge(self, ticket: Ticket, ending: Ending) -> Signal:
        if ending.ok:
            self._remember(refused=False)
            return Signal.NONE
        if not ending.rate_limited:
            return Signal.NONE
        self._remember(refused=True)
        for unit, quota in read_quotas(ending.headers).items():
            cost = 1.0 if unit == "requests" else float(max(1, ticket.tokens))
            if quota.remaining < max(cost, 0.01 * quota.limit):
                return Signal.LIMIT
        wait = ending.retry_after
        if wait is not None and (wait >= self.LONG_WAIT or self.computed(wait)):
            return Signal.LIMIT
        if self.refusals >= self.PATTERN:
            self.pattern_seen = True
        return Signal.LIMIT if self.pattern_seen else Signal.NOISE

    @staticmethod
    def computed(wait: float) -> bool:
        """A wait to the millisecond, not whole seconds (``retry-after-ms: 83``, a ``RetryInfo``
        of ``"0.083s"``): what a bucket computes as its time to the next unit. A server that
        refuses for being busy asks for a round pause (``retry-after: 1``)."""
        return wait > 0 and abs(wait - round(wait)) >= 1e-4

    def _remember(self, *, refused: bool) -> None:
        if len(self.recent) == self.recent.maxlen and self.recent[0]:
            self.refusals -= 1
        self.recent.append(refused)
        self.refusals += refused

    def __repr__(self) -> str:
        return (
            f"Evidence({self.refusals}/{len(self.recent)} recent 429s, "
            f"{self.limits_seen} of a limit{', pattern seen' if self.pattern_seen else ''})"
        )
