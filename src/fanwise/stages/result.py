"""What a staged run produced: each stage's calls (its branches), value and status.

A stage's status is ``fulfilled`` (every call answered), ``partial`` (some failed, the policy
let it go on), ``failed`` (the policy, a route or an input said no), ``skipped`` (it could not
run: an input failed or the run stopped) or ``not_chosen`` (a route chose another branch).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from fanwise.calls import CallOutcome
from fanwise.models.base import Usage
from fanwise.outcome import Fulfilled, Rejected
from fanwise.stages.model import Stage, Workflow
from fanwise.stages.template import as_text
from fanwise.structured import jsonable, outcome_usage


class StageStatus(enum.StrEnum):
    FULFILLED = "fulfilled"
    PARTIAL = "partial"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_CHOSEN = "not_chosen"


class RunStatus(enum.StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    NO_RESULT = "no_result"


@dataclass(frozen=True, slots=True)
class Branch:
    """One call of a stage: ``id`` is what a citing stage cites (``districts.2``)."""

    id: str
    label: str
    outcome: CallOutcome

    @property
    def data(self) -> Any:
        """The answer as data: the parsed value of a structured answer, else its text."""
        if not isinstance(self.outcome, Fulfilled):
            return None
        value = self.outcome.value
        return jsonable(value.parsed) if value.parsed is not None else value.text

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "label": self.label, "status": self.outcome.status}
        if isinstance(self.outcome, Fulfilled):
            data["answer"] = self.outcome.value.text
            if self.outcome.value.parsed is not None:
                data["parsed"] = jsonable(self.outcome.value.parsed)
            data["cached"] = self.outcome.cached
        else:
            data["error"] = {"kind": self.outcome.kind.value, "message": self.outcome.message}
        data["latency"] = round(self.outcome.latency, 4)
        data["attempts"] = len(self.outcome.attempts)
        return data


@dataclass(frozen=True, slots=True)
class StageResult:
    """A stage, settled. ``value`` is what ``{name}`` stands for in later prompts' data."""

    stage: Stage
    status: StageStatus
    branches: tuple[Branch, ...] = ()
    value: Any = None
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # width, choice, tally, citations
    started: float = 0.0
    finished: float = 0.0

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def ok(self) -> bool:
        return self.status in (StageStatus.FULFILLED, StageStatus.PARTIAL)

    @property
    def failed(self) -> tuple[Branch, ...]:
        return tuple(b for b in self.branches if isinstance(b.outcome, Rejected))

    @property
    def text(self) -> str | None:
        """The stage's answer as text: a single call's, a vote's winner, a route's choice."""
        if self.value is None:
            return None
        return self.value if isinstance(self.value, str) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.stage.kind,
            "status": self.status.value,
            "reason": self.reason,
            "value": self.value,
            **self.detail,
            "calls": [b.to_dict() for b in self.branches],
            "started": round(self.started, 4),
            "finished": round(self.finished, 4),
        }


@dataclass(frozen=True, slots=True)
class StagedResult:
    """A whole run: every stage's result, the final one's text, and why there is none."""

    workflow: Workflow
    stages: tuple[StageResult, ...]
    status: RunStatus
    reason: str | None = None
    model: str = ""

    @property
    def final(self) -> StageResult | None:
        """The last stage that ran (a route's branch not taken did not)."""
        ran = [r for r in self.stages if r.status is not StageStatus.NOT_CHOSEN]
        return ran[-1] if ran else None

    @property
    def text(self) -> str | None:
        final = self.final
        if final is None or not final.ok:
            return None
        value = final.value
        return value if isinstance(value, str) else as_text(value)

    def stage(self, name: str) -> StageResult:
        return next(r for r in self.stages if r.name == name)

    @property
    def outcomes(self) -> list[CallOutcome]:
        return [b.outcome for r in self.stages for b in r.branches]

    @property
    def usage(self) -> Usage:
        """Tokens of the calls sent now (answers reused from the journal cost none)."""
        spent = (
            outcome_usage(o) for o in self.outcomes if not (isinstance(o, Fulfilled) and o.cached)
        )
        return sum(spent, Usage())

    def summary(self) -> list[dict[str, str]]:
        """Each stage's name, status and group (``map ×3``, ``route → food``), for the journal."""
        return [{"name": r.name, "status": r.status.value, "group": group(r)} for r in self.stages]

    def to_dict(self) -> dict[str, Any]:
        outcomes = self.outcomes
        return {
            "title": self.workflow.title,
            "topic": self.workflow.topic,
            "status": self.status.value,
            "reason": self.reason,
            "model": self.model,
            "text": self.text,
            "stages": [r.to_dict() for r in self.stages],
            "stats": {
                "calls": len(outcomes),
                "fulfilled": sum(isinstance(o, Fulfilled) for o in outcomes),
                "rejected": sum(isinstance(o, Rejected) for o in outcomes),
                "cached": sum(isinstance(o, Fulfilled) and o.cached for o in outcomes),
                "usage": self.usage.to_dict(),
            },
        }


def group(result: StageResult) -> str:
    """What a stage was, as a group: a map's width, a route's choice, a vote's tally."""
    detail = result.detail
    kind = result.stage.kind
    if kind == "map" and "width" in detail:
        cut = f" of {detail['items']}" if detail["items"] != detail["width"] else ""
        return f"map ×{detail['width']}{cut}"
    if kind == "route" and "choice" in detail:
        return f"route → {detail['choice']}"
    if kind == "vote" and "tally" in detail:
        tally = ", ".join(f"{' '.join(k.split())[:30]}: {n}" for k, n in detail["tally"].items())
        return f"vote ×{len(result.branches)} ({tally})"
    if kind == "questions":
        return f"questions ×{len(result.branches)}"
    return kind


__all__ = ["Branch", "RunStatus", "StageResult", "StageStatus", "StagedResult", "group"]
