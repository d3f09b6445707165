"""What ``fanwise runs`` counts: research calls and the synthesis apart.

The journal's totals count every call of a run alike, so a workflow with 19 of 20 questions
answered and its synthesis written read as "20 OK, 1 FAILED". The synthesis is the call after
the last question; it gets its own column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fanwise.journal import Journal, RunRecord
from fanwise.outcome import Fulfilled


@dataclass(frozen=True, slots=True)
class RunCounts:
    """Research (or batch) calls by their latest outcome, and the synthesis's, if any."""

    fulfilled: int
    rejected: int
    synthesis: str | None = None  # "ok", "failed", or None: not made (or not a workflow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "research": {"fulfilled": self.fulfilled, "rejected": self.rejected},
            "synthesis": self.synthesis,
        }


def research_counts(journal: Journal, record: RunRecord) -> RunCounts:
    """A workflow's research calls and its synthesis; a batch's calls as they are."""
    plan = record.spec.get("plan")
    questions = plan.get("questions") if isinstance(plan, dict) else None
    if record.kind != "workflow" or not isinstance(questions, list):
        return RunCounts(record.totals.fulfilled, record.totals.rejected)
    fulfilled = rejected = 0
    synthesis = None
    for call in journal.latest_calls(record.id):
        ok = isinstance(call.outcome, Fulfilled)
        if call.index >= len(questions):
            synthesis = "ok" if ok else "failed"
        elif ok:
            fulfilled += 1
        else:
            rejected += 1
    return RunCounts(fulfilled, rejected, synthesis)
