"""The one JSON document of a run's result: what ``--json`` prints, and every view reads.

Built once, from the settled calls (the result's branches), by ``result_document``: the live
``--json``, ``fanwise show RUN --json``, Python's ``WorkflowResult.to_dict()``, and the
Markdown, HTML and ``runs`` views, which read a result rebuilt the same way from the journal.
A research plan's document lists its ``questions`` and ``synthesis``; a plan of stages' lists
its ``stages`` and ``text``; ``run`` and ``cost`` are added when the run has them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fanwise.outcome import Fulfilled, Rejected
from fanwise.structured import jsonable

if TYPE_CHECKING:
    from fanwise.stages.result import WorkflowResult


def result_document(
    result: WorkflowResult,
    *,
    run: Mapping[str, Any] | None = None,
    cost: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The result as JSON data; ``run`` (its id, journal, resume line) and ``cost`` when given."""
    document = _research(result) if result.plan is not None else _stages(result)
    if run is not None:
        document["run"] = dict(run)
    if cost is not None:
        document["cost"] = dict(cost)
    return document


def _research(result: WorkflowResult) -> dict[str, Any]:
    assert result.plan is not None
    outcome = result.synthesis
    synthesis: dict[str, Any] | None = None
    if isinstance(outcome, Fulfilled):
        synthesis = {
            "status": "fulfilled",
            "text": outcome.value.text,
            **({} if outcome.value.parsed is None else {"parsed": jsonable(outcome.value.parsed)}),
            "truncated": outcome.value.truncated,
            "usage": outcome.value.usage.to_dict(),
            "latency": round(outcome.latency, 4),
            "attempts": len(outcome.attempts),
        }
    elif isinstance(outcome, Rejected):
        synthesis = {
            "status": "rejected",
            "error": {"kind": outcome.kind.value, "message": outcome.message},
            "latency": round(outcome.latency, 4),
            "attempts": len(outcome.attempts),
        }
    return {
        "topic": result.plan.topic,
        "title": result.plan.title,
        "status": result.status.value,
        "reason": result.reason,
        "model": result.settings.model,
        "questions": [a.to_dict() for a in result.answers],
        "synthesis": synthesis,
        "stats": result.stats.to_dict(),
    }


def _stages(result: WorkflowResult) -> dict[str, Any]:
    outcomes = result.outcomes
    return {
        "title": result.workflow.title,
        "topic": result.workflow.topic,
        "status": result.status.value,
        "reason": result.reason,
        "model": result.model,
        "text": result.text,
        "stages": [r.to_dict() for r in result.stages],
        "stats": {
            "calls": len(outcomes),
            "fulfilled": sum(isinstance(o, Fulfilled) for o in outcomes),
            "rejected": sum(isinstance(o, Rejected) for o in outcomes),
            "cached": sum(isinstance(o, Fulfilled) and o.cached for o in outcomes),
            "truncated": sum(isinstance(o, Fulfilled) and o.value.truncated for o in outcomes),
            "usage": result.usage.to_dict(),
        },
    }


__all__ = ["result_document"]
