"""What ``fanwise runs`` counts: research calls and the synthesis apart.

The journal's totals count every call of a run alike, so a workflow with 19 of 20 questions
answered and its synthesis written read as "20 OK, 1 FAILED". The synthesis is the call after
the last question; it gets its own column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fanwise.journal import Journal, RunRecord
from fanwise.journal.results import rebuild_workflow
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
    """A workflow's research calls and its synthesis, told apart as the live run made them (a
    question asked of several models is one research call each); a batch's calls as they are.
    Only calls the journal holds are counted: a call an interrupted run never made is neither."""
    if record.kind != "workflow" or not isinstance(record.spec.get("plan"), dict):
        return RunCounts(record.totals.fulfilled, record.totals.rejected)
    calls = list(journal.latest_calls(record.id))
    research = len(rebuild_workflow(record, calls).answers)
    fulfilled = rejected = 0
    synthesis = None
    for call in calls:
        ok = isinstance(call.outcome, Fulfilled)
        if call.index >= research:
            synthesis = "ok" if ok else "failed"
        elif ok:
            fulfilled += 1
        else:
            rejected += 1
    return RunCounts(fulfilled, rejected, synthesis)
