"""What an ``--engine auto`` run did, read from its settled calls: lines and cost by path.

Read from the journal's rows (or any outcomes with their costs), so a resumed run counts the
lines its first process answered too. Every attempt says its path (``Attempt.via``); a batch
answer is priced at ``BATCH_DISCOUNT`` of the live price, so all-live would have cost the live
cost plus the batch cost over the discount.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fanwise.calls import CallOutcome
from fanwise.dispatch.base import BATCH_DISCOUNT, answered_via
from fanwise.dispatch.deadline import Switch
from fanwise.outcome import CallTimeout, Fulfilled, Rejected


@dataclass
class PathTotals:
    """Lines and dollars by the path that answered them; the deadline and when the run ended."""

    deadline: float  # the wall clock's time
    lines: Counter[str] = field(default_factory=Counter)
    cost: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    late: int = 0  # lines cut by the deadline
    finished: float | None = None
    switch: Switch | None = None  # when the run stopped waiting for its batch, and why
    twice: int = 0  # lines both paths answered (a batch that ran its lines out of order)

    def add(self, outcome: CallOutcome, cost: float | None) -> None:
        # A call with no path of its own is live (a workflow's synthesis), or the journal's.
        cached = isinstance(outcome, Fulfilled) and outcome.cached
        path = answered_via(outcome) or ("journal" if cached else "live")
        self.lines[path if outcome.ok else "failed"] += 1
        self.cost[path] += cost or 0.0
        if isinstance(outcome, Rejected) and isinstance(outcome.error, CallTimeout):
            self.late += "deadline" in str(outcome.error)

    @property
    def all_live(self) -> float:
        """What the same answers would have cost live."""
        return self.cost["live"] + self.cost["batch"] / BATCH_DISCOUNT

    @property
    def saved(self) -> float:
        return self.all_live - sum(self.cost.values())

    @property
    def met(self) -> bool | None:
        """Every line settled by the deadline; None while the run has not ended."""
        if self.finished is None:
            return None
        return self.late == 0 and self.finished <= self.deadline

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": dict(self.lines),
            "cost_usd": {k: round(v, 6) for k, v in self.cost.items() if k != "journal" or v},
            "all_live_usd": round(self.all_live, 6),
            "saved_usd": round(self.saved, 6),
            "deadline": self.deadline,
            "finished": self.finished,
            "deadline_met": self.met,
            "switched_at": None if self.switch is None else self.switch.at,
            "switch_reason": None if self.switch is None else self.switch.reason,
            "answered_twice": self.twice,
        }


def path_totals(
    settled: Iterable[tuple[CallOutcome, float | None]], deadline: float, finished: float | None
) -> PathTotals:
    totals = PathTotals(deadline, finished=finished)
    for outcome, cost in settled:
        totals.add(outcome, cost)
    return totals


__all__ = ["PathTotals", "path_totals"]
