"""What the journal keeps of a result besides its calls, and the result rebuilt from the two.

A run's calls are journaled as they settle; the rest of its result (each stage's status, reason,
route choice, vote tally, citations, which call is which branch) is kept at the end as its
``shape``: no prompt or answer text, so it is kept under ``--journal-content meta`` too. A saved
run is then rebuilt into the same ``WorkflowResult`` the live run made, and every view of it
(``show``, ``show --json``, ``--timeline``, ``report``, ``runs``) reads that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fanwise.calls import CallOutcome
from fanwise.models.settings import ModelSettings
from fanwise.outcome import Cancelled, Fulfilled, Rejected
from fanwise.stages.model import Stage, Workflow
from fanwise.stages.research import Plan, Stats
from fanwise.stages.result import Branch, StageResult, StageStatus, Status, WorkflowResult

NOT_RUN = "not run: the run stopped before this call settled"


def result_shape(result: WorkflowResult) -> list[dict[str, Any]]:
    """Each stage as it ended, and its calls as ``[id, label, index]``: JSON, no text."""
    return [
        {
            "name": r.name,
            "status": r.status.value,
            "reason": r.reason,
            "detail": r.detail,
            "started": round(r.started, 4),
            "finished": round(r.finished, 4),
            "branches": [[b.id, b.label, b.index] for b in r.branches],
        }
        for r in result.stages
    ]


def rebuild(
    workflow: Workflow,
    shape: Sequence[Mapping[str, Any]],
    outcomes: Mapping[int, CallOutcome],
    *,
    status: Status,
    reason: str | None,
    settings: ModelSettings,
    plan: Plan | None = None,
    stats: Stats | None = None,
) -> WorkflowResult:
    """The result a run left, from its shape and its calls' outcomes by index (a call that
    never settled reads as not run; a stage the run never reached, as skipped)."""
    told = {str(entry["name"]): entry for entry in shape}
    stages = []
    for stage in workflow.stages:
        entry = told.get(stage.name)
        if entry is None:
            stages.append(StageResult(stage, StageStatus.SKIPPED, reason=NOT_RUN))
            continue
        branches = tuple(
            Branch(str(id_), str(label), _outcome(outcomes, index), index)
            for id_, label, index in entry.get("branches", ())
        )
        state = StageStatus(entry["status"])
        detail = dict(entry.get("detail") or {})
        stages.append(
            StageResult(
                stage,
                state,
                branches,
                stage_value(stage, state, branches, detail, entry.get("reason")),
                entry.get("reason"),
                detail,
                float(entry.get("started", 0.0)),
                float(entry.get("finished", 0.0)),
            )
        )
    return WorkflowResult(
        workflow, tuple(stages), status, reason, settings.model, plan, settings, stats
    )


def stage_value(
    stage: Stage,
    status: StageStatus,
    branches: Sequence[Branch],
    detail: Mapping[str, Any],
    reason: str | None = None,
) -> Any:
    """What ``{name}`` stood for, read again from the stage's calls, as the runner set it: a
    fan-out's answers, a route's choice, a vote's winner (or its judge's answer), a chain
    step's answer; None for a stage that did not run."""
    if status in (StageStatus.SKIPPED, StageStatus.NOT_CHOSEN):
        return None
    answered = [b for b in branches if isinstance(b.outcome, Fulfilled)]
    if stage.kind == "route":
        return detail.get("choice")
    if stage.kind == "vote":
        if "tally" in detail:
            return next((b.data for b in answered if b.id == detail.get("winner")), None)
        if "judged" in detail:
            return next((b.data for b in answered if b.id.endswith(".judge")), None)
        judged = any(b.id.endswith(".judge") for b in branches)
        if judged or (reason or "").startswith("pick "):
            return None
        return [b.data for b in answered]  # the samples failed: what did arrive
    if stage.kind in ("questions", "map"):  # failed before any call: no list was made
        return None if status is StageStatus.FAILED and not branches else [b.data for b in answered]
    return answered[0].data if answered and status is not StageStatus.FAILED else None


def _outcome(outcomes: Mapping[int, CallOutcome], index: Any) -> CallOutcome:
    found = outcomes.get(index) if isinstance(index, int) else None
    return found if found is not None else Rejected(Cancelled(NOT_RUN))


__all__ = ["NOT_RUN", "rebuild", "result_shape", "stage_value"]
