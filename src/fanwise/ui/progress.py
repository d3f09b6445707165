"""What is happening right now in a phase: counts and per-call rows, kept up to date per event.

The live view reads this; it holds no terminal. Each event costs O(1): counters move, one row
changes. Rows are kept for every call of a small phase; a big one (hundreds of calls and more)
keeps only the calls in flight, which the concurrency cap bounds, and the latest failures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fanwise.events import CallRetrying, CallSettled, CallStarted, Event, PhaseStarted
from fanwise.models.base import Completion
from fanwise.outcome import Fulfilled

CallState = Literal["running", "retrying", "done", "failed", "cached", "cancelled"]
Price = Callable[[Completion], float | None]
"""The cost of one completion in dollars, or None when its model's price is unknown."""


@dataclass(slots=True)
class CallRow:
    """One call as the live view shows it; times are on the engine's clock."""

    index: int
    label: str
    state: CallState
    started: float
    attempt: int = 1
    resume_at: float = 0.0
    latency: float = 0.0
    tokens: int = 0
    error: str = ""

    def elapsed(self, now: float) -> float:
        finished = ("done", "failed", "cached", "cancelled")
        return self.latency if self.state in finished else now - self.started


@dataclass(frozen=True, slots=True)
class Failure:
    label: str
    kind: str
    message: str
    at: float


class Progress:
    """The state of the current phase, updated by ``apply(event)``."""

    def __init__(
        self, *, keep_rows: int = 40, keep_failures: int = 5, price: Price | None = None
    ) -> None:
        self.keep_rows = keep_rows
        self.price = price
        self.failures: deque[Failure] = deque(maxlen=keep_failures)
        self.phase = ""
        self.reset("research", 0, 0.0)

    def reset(self, phase: str, total: int, at: float) -> None:
        self.phase = phase
        self.total = total
        self.phase_started = at
        self.rows: dict[int, CallRow] = {}
        self.running = self.retrying = 0
        self.fulfilled = self.rejected = self.cached = self.retries = 0
        self.tokens = 0
        self.cost: float | None = 0.0 if self.price is not None else None
        self.failures.clear()

    def cancel_unfinished(self, at: float) -> None:
        """Ctrl-C: the calls still running or waiting to retry were cancelled, not left running."""
        for row in self.rows.values():
            if row.state in ("running", "retrying"):
                row.state, row.latency = "cancelled", at - row.started
        self.running = self.retrying = 0

    @property
    def compact(self) -> bool:
        """Too many calls for one row each: show the bar and the latest failures instead."""
        return self.total > self.keep_rows

    @property
    def settled(self) -> int:
        return self.fulfilled + self.rejected

    @property
    def queued(self) -> int:
        return max(0, self.total - self.settled - self.running - self.retrying)

    def throughput(self, now: float) -> float | None:
        """Calls settled per second since the phase began."""
        elapsed = now - self.phase_started
        return self.settled / elapsed if self.settled and elapsed > 0 else None

    def eta(self, now: float) -> float | None:
        rate = self.throughput(now)
        return (self.total - self.settled) / rate if rate else None

    def apply(self, event: Event) -> None:
        match event:
            case PhaseStarted(phase=phase, total=total, at=at):
                self.reset(phase, total, at)
            case CallStarted(index=index, label=label, attempt=1, at=at):
                self.rows[index] = CallRow(index, label, "running", at)
                self.running += 1
            case CallStarted(index=index, attempt=attempt):
                row = self.rows.get(index)
                if row is not None and row.state == "retrying":
                    row.state, row.attempt = "running", attempt
                    self.retrying -= 1
                    self.running += 1
            case CallRetrying(index=index, error=error, wait=wait, at=at):
                self.retries += 1
                row = self.rows.get(index)
                if row is not None and row.state == "running":
                    row.state, row.resume_at = "retrying", at + wait
                    row.error = f"{error['kind']}"
                    self.running -= 1
                    self.retrying += 1
            case CallSettled():
                self._settle(event)

    def _settle(self, event: CallSettled) -> None:
        outcome = event.outcome
        row = self.rows.pop(event.index, None)
        if row is None:  # answered from the journal: it never started
            row = CallRow(event.index, event.label, "running", event.at)
        elif row.state == "running":
            self.running -= 1
        elif row.state == "retrying":
            self.retrying -= 1
        row.latency = outcome.latency
        row.attempt = max(row.attempt, len(outcome.attempts))
        if isinstance(outcome, Fulfilled):
            self.fulfilled += 1
            row.state = "cached" if outcome.cached else "done"
            if outcome.cached:
                self.cached += 1
            else:
                row.tokens = outcome.value.usage.total_tokens
                self.tokens += row.tokens
                record = event.record  # the engine's: the call priced once
                if record is not None and self.price is not None and self.cost is not None:
                    self.cost = None if record.cost is None else self.cost + record.cost
                else:
                    self._add_cost(outcome.value)
        else:
            self.rejected += 1
            row.state, row.error = "failed", f"{outcome.kind}: {outcome.message}"
            self.failures.append(Failure(event.label, outcome.kind, outcome.message, event.at))
        if not self.compact:
            self.rows[event.index] = row

    def _add_cost(self, completion: Completion) -> None:
        if self.price is None or self.cost is None:
            return
        cost = self.price(completion)
        self.cost = None if cost is None else self.cost + cost
