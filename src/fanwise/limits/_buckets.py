"""Client-side request and token buckets: ``--rpm`` and ``--tpm``.

A bucket holds ``burst`` units and refills continuously at ``per_minute / 60`` a second. The
default burst is one second's allowance: OpenAI publishes limits per minute but enforces them
over shorter windows, so a client that spends a whole minute's budget at once is refused.
A request costs one request unit; its token cost is estimated before the call and corrected from
``usage`` after it, so the bucket may run into debt that later calls wait out.
"""

from __future__ import annotations

from typing import Literal

from fanwise.limits._core import Ending, Ticket

Unit = Literal["requests", "tokens"]


class Bucket:
    """A token bucket on the limiter's clock; it starts full."""

    def __init__(self, per_minute: float, unit: Unit, *, burst: float | None = None) -> None:
        if per_minute <= 0:
            raise ValueError(f"a {unit}-per-minute limit must be above 0, got {per_minute:g}")
        if burst is not None and burst < 1:
            raise ValueError(f"a burst must be at least 1 {unit}, got {burst:g}")
        self.per_minute = per_minute
        self.unit: Unit = unit
        self.rate = per_minute / 60.0
        self.capacity = burst if burst is not None else max(1.0, self.rate)
        self.level = self.capacity
        self._updated: float | None = None

    @classmethod
    def rpm(cls, per_minute: float, *, burst: float | None = None) -> Bucket:
        return cls(per_minute, "requests", burst=burst)

    @classmethod
    def tpm(cls, per_minute: float, *, burst: float | None = None) -> Bucket:
        return cls(per_minute, "tokens", burst=burst)

    def cost(self, ticket: Ticket) -> float:
        return 1.0 if self.unit == "requests" else float(ticket.tokens)

    def wait(self, ticket: Ticket, now: float) -> float:
        self._refill(now)
        # A call dearer than the whole bucket waits for a full bucket, then runs into debt.
        needed = min(self.cost(ticket), self.capacity)
        return max(0.0, (needed - self.level) / self.rate)

    def started(self, ticket: Ticket, now: float) -> None:
        self._refill(now)
        self.level -= self.cost(ticket)

    def finished(self, ticket: Ticket, ending: Ending, now: float) -> None:
        if self.unit == "tokens" and ending.tokens is not None:
            self._refill(now)
            self.level = min(self.capacity, self.level - (ending.tokens - ticket.tokens))

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            self.level = min(self.capacity, self.level + (now - self._updated) * self.rate)
        self._updated = now if self._updated is None else max(self._updated, now)

    def __repr__(self) -> str:
        return f"Bucket({self.per_minute:g} {self.unit}/min, burst={self.capacity:g})"
