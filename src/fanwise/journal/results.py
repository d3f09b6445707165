"""A recorded workflow run rebuilt as a ``WorkflowResult``, to print it again with no API call."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from fanwise.engine import CallOutcome
from fanwise.journal.records import CallRecord, RunRecord
from fanwise.models.base import Request, Usage
from fanwise.models.settings import ModelSettings
from fanwise.outcome import Cancelled, Fulfilled, Rejected
from fanwise.schemas import schema_from_dict
from fanwise.stages.research import Answer, Plan, Stats
from fanwise.stages.result import Status, WorkflowResult
from fanwise.stages.shape import NOT_RUN, rebuild
from fanwise.structured import outcome_usage

UNFINISHED = ("running", "interrupted")
NOT_RUN_OUTCOME = Rejected(Cancelled(NOT_RUN))


def plan_from_spec(spec: Mapping[str, Any]) -> Plan:
    data = dict(spec["plan"])
    data["questions"] = tuple(
        q if isinstance(q, str) else Request.from_dict(q) for q in data["questions"]
    )
    data["question_bodies"] = tuple(data.get("question_bodies", ()))
    if "synthesis" in data:  # runs recorded before the field's rename
        data["synthesis_instructions"] = data.pop("synthesis")
    data["schema"] = schema_from_dict(data.get("schema"))
    data["question_schemas"] = tuple(map(schema_from_dict, data.get("question_schemas", ())))
    data["synthesis_schema"] = schema_from_dict(data.get("synthesis_schema"))
    return Plan(**data)


def settings_from_spec(spec: Mapping[str, Any]) -> ModelSettings:
    return ModelSettings(**spec.get("settings", {}))


def rebuild_workflow(run: RunRecord, calls: Iterable[CallRecord]) -> WorkflowResult:
    """A research plan's run as it left it (a call that never settled shows as not run): from
    its journaled shape, or, for a run journaled before shapes were, from the plan itself (its
    research calls in order, a question asked of several models one call each, then the
    synthesis)."""
    plan = plan_from_spec(run.spec)
    settings = settings_from_spec(run.spec)
    options = {**(run.spec.get("options") or {}), **(run.spec.get("args") or {})}
    outcomes = {record.index: record.outcome for record in calls}
    status, reason = _ending(run)
    shape = run.summary.get("shape")
    if isinstance(shape, list):
        workflow = plan.workflow(
            min_answers=max(1, int(options.get("min_answers") or 1)),
            fail_fast=options.get("mode") == "all" or bool(options.get("fail_fast")),
        )
        result = rebuild(
            workflow, shape, outcomes, status=status, reason=reason, settings=settings, plan=plan
        )
        if not run.text_kept:  # each question named as the plan kept it: "question 2 [not kept]"
            result = _labelled(result, [call.label for call in plan.research_calls(settings)])
        stats = _stats(run.summary.get("stats"), result.answers, result.synthesis)
        return dataclasses.replace(result, research_stats=stats)
    labels = [call.label for call in plan.research_calls(settings)]
    answers = tuple(
        Answer(label, outcomes.get(index, NOT_RUN_OUTCOME)) for index, label in enumerate(labels)
    )
    synthesis = outcomes.get(len(labels))
    stats = _stats(run.summary.get("stats"), answers, synthesis)
    return WorkflowResult.from_answers(plan, answers, synthesis, status, stats, reason, settings)


def rebuild_stages(run: RunRecord, calls: Iterable[CallRecord]) -> WorkflowResult | None:
    """A plan of stages' run as it left it, from its journaled shape; None for a run journaled
    before shapes were (its stages' reasons, values and citations were not kept)."""
    shape = run.summary.get("shape")
    if "workflow" not in run.spec or not isinstance(shape, list):
        return None
    from fanwise.stages.model import Workflow

    outcomes = {record.index: record.outcome for record in calls}
    status, reason = _ending(run)
    workflow = Workflow.from_dict(run.spec["workflow"])
    settings = settings_from_spec(run.spec)
    return rebuild(workflow, shape, outcomes, status=status, reason=reason, settings=settings)


def rebuild_result(run: RunRecord, calls: Iterable[CallRecord]) -> WorkflowResult | None:
    """A workflow run (a research plan or a plan of stages) rebuilt, or None: not a workflow,
    or one journaled before what it needs was kept."""
    if run.kind == "workflow":
        return rebuild_workflow(run, calls)
    if run.kind == "stages":
        return rebuild_stages(run, calls)
    return None


def _labelled(result: WorkflowResult, labels: list[str]) -> WorkflowResult:
    """The research stage's calls labelled as the plan labels its questions."""
    research, *rest = result.stages
    branches = tuple(
        dataclasses.replace(b, label=labels[b.index])
        if b.index is not None and b.index < len(labels)
        else b
        for b in research.branches
    )
    return dataclasses.replace(
        result, stages=(dataclasses.replace(research, branches=branches), *rest)
    )


def _ending(run: RunRecord) -> tuple[Status, str | None]:
    """The run's status and reason, a run that did not finish said so."""
    status = Status(run.status) if run.status in Status.__members__.values() else Status.NO_RESULT
    reason = run.reason
    if run.status in UNFINISHED:
        reason = f"the run did not finish ({run.status}); finish it with: fanwise resume {run.id}"
    return status, reason


def _stats(
    stored: Mapping[str, Any] | None, answers: tuple[Answer, ...], synthesis: CallOutcome | None
) -> Stats:
    outcomes = [a.outcome for a in answers]
    paid = [
        o
        for o in (*outcomes, synthesis)
        if o is not None and not (isinstance(o, Fulfilled) and o.cached)
    ]
    computed = Stats.of(
        outcomes,
        wall_time=0.0,
        synthesis=synthesis,
        usage=sum((outcome_usage(o) for o in paid), Usage()),  # as run_workflow counts it
    )
    if not stored:
        return computed
    return Stats(
        fulfilled=int(stored["fulfilled"]),
        rejected=int(stored["rejected"]),
        wall_time=float(stored["wall_time"]),
        sum_of_latencies=float(stored["sum_of_latencies"]),
        synthesis_time=float(stored["synthesis_time"]),
        usage=Usage.from_dict(stored.get("usage")),
        # Runs journaled before these were kept: read them off the calls' attempts.
        service_time=float(stored.get("service_time", computed.service_time)),
        queue_time=float(stored.get("queue_time", computed.queue_time)),
        sent=int(stored.get("sent", computed.sent)),
        aborted=bool(stored.get("aborted", computed.aborted)),
        truncated=int(stored.get("truncated", computed.truncated)),
        sequential=_number(stored.get("sequential", computed.sequential)),
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
