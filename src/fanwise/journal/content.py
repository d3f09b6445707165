"""How much of a run the journal keeps: ``full`` (everything), or ``meta`` (no prompt or answer).

A ``meta`` journal keeps the run's shape (how many calls, which index, which key), status,
timings, attempts, errors, usage and cost, so ``runs``, ``show --timeline`` and cost accounting
still work; every text that came from a prompt or an answer is replaced by ``NOT_KEPT`` before
it reaches SQLite. A batch keeps its input file's name and each line's ``custom_id``: they are
the user's identifiers, not content.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

NOT_KEPT = "[not kept]"


class Content(StrEnum):
    """What a run's rows hold: ``full`` text, or ``meta`` only."""

    FULL = "full"
    META = "meta"


def meta_topic(kind: str, topic: str) -> str:
    """A workflow's topic is in its prompts; a batch's topic is its input file's name."""
    return topic if kind == "batch" else NOT_KEPT


def meta_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with every text a prompt is made of replaced (a plan's topic, questions,
    instructions, bodies and shared context; a plan of stages' prompts, questions, judges,
    instructions, bodies and context); titles, stage names and the shape stay."""
    kept = dict(spec)
    plan = spec.get("plan")
    if isinstance(plan, Mapping):
        questions = plan.get("questions", ())
        kept["plan"] = {
            **plan,
            **{
                name: NOT_KEPT
                for name, value in plan.items()
                if isinstance(value, str) and name != "title"
            },
            "questions": [f"question {n} {NOT_KEPT}" for n in range(1, len(questions) + 1)],
            "context": _materials(plan.get("context")),
            "research_body": {},
            "question_bodies": [{} for _ in plan.get("question_bodies", ()) or ()],
            "synthesis_body": {},
        }
    workflow = spec.get("workflow")
    if isinstance(workflow, Mapping):
        stages = [_meta_stage(s) for s in workflow.get("stages", ()) if isinstance(s, Mapping)]
        kept["workflow"] = {**workflow, "topic": NOT_KEPT, "stages": stages}
    return kept


def _meta_stage(stage: Mapping[str, Any]) -> dict[str, Any]:
    """A stage with no prompt text: what it asks is replaced, how it runs (its kind, sources,
    branches, policy, schema) stays, so its shape is still shown."""
    kept = dict(stage)
    for name in ("prompt", "judge", "instructions"):
        if isinstance(stage.get(name), str):
            kept[name] = NOT_KEPT
    questions = stage.get("questions") or ()
    kept["questions"] = [f"question {n} {NOT_KEPT}" for n in range(1, len(questions) + 1)]
    kept["context"] = _materials(stage.get("context"))
    kept["body"] = {}
    return kept


def _materials(materials: Any) -> list[dict[str, str]]:
    return [{"name": NOT_KEPT, "text": NOT_KEPT} for _ in materials or ()]


def meta_shape(shape: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A result's shape with no text from a prompt or an answer: each call's label, a route's
    choice and a vote's ballots replaced; statuses, ids, indexes and counts stay."""
    kept = []
    for stage in shape:
        detail = dict(stage.get("detail") or {})
        if "choice" in detail:
            detail["choice"] = NOT_KEPT
        if isinstance(detail.get("tally"), dict):
            detail["tally"] = {
                f"answer {n} {NOT_KEPT}": count
                for n, count in enumerate(detail["tally"].values(), 1)
            }
        branches = [[id_, f"call {index} {NOT_KEPT}", index] for id_, _, index in stage["branches"]]
        kept.append({**stage, "detail": detail, "branches": branches})
    return kept


def meta_label(kind: str, label: str, index: int) -> str:
    """A workflow's label is its question; a batch line's label is its ``custom_id``."""
    return label if kind == "batch" else f"call {index} {NOT_KEPT}"


def meta_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request's endpoint and model only: its body (prompt, messages, tools) is not kept."""
    body = request.get("body")
    model = body.get("model") if isinstance(body, Mapping) else request.get("model")
    return {"endpoint": request.get("endpoint", "responses"), "model": model}


def meta_outcome(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """A fulfilled outcome with its answer's text replaced; usage, model and timings stay."""
    value = outcome.get("value")
    if not isinstance(value, Mapping) or "text" not in value:
        return dict(outcome)
    kept = {k: v for k, v in value.items() if k not in ("tool_calls", "refusal", "parsed")}
    return {**outcome, "value": {**kept, "text": NOT_KEPT}}
