"""What a workflow run produced: each stage's calls (its branches), value and status.

One result type, ``WorkflowResult``, and one run status, ``Status``, for every workflow: a plan
of stages and a research plan (two stages: ``research``, ``synthesis``) alike. A research
plan's result also reads as its questions' ``answers``, its ``synthesis`` and its ``stats``.

A stage's status is ``fulfilled`` (every call answered), ``partial`` (some failed, the policy
let it go on), ``failed`` (the policy, a route or an input said no), ``skipped`` (it could not
run: an input failed or the run stopped) or ``not_chosen`` (a route chose another branch).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fanwise.calls import CallOutcome
from fanwise.models.base import Usage
from fanwise.models.settings import ModelSettings
from fanwise.outcome import Fulfilled, Rejected
from fanwise.run_info import RunInfo
from fanwise.stages.document import result_document
from fanwise.stages.model import Stage, Workflow
from fanwise.stages.research import RESEARCH, SYNTHESIS, Answer, Plan, Stats
from fanwise.stages.template import as_text
from fanwise.structured import jsonable, outcome_usage


class StageStatus(enum.StrEnum):
    FULFILLED = "fulfilled"
    PARTIAL = "partial"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_CHOSEN = "not_chosen"


class Status(enum.StrEnum):
    """How a whole run ended: the one status of every workflow (and the journal's)."""

    COMPLETE = "complete"  # every call answered, the result made
    PARTIAL = "partial"  # some calls failed, the result made from the rest
    NO_RESULT = "no_result"  # no result: a quorum missed, fail-fast, a required stage failed


@dataclass(frozen=True, slots=True)
class Branch:
    """One call of a stage: ``id`` is what a citing stage cites (``districts.2``)."""

    id: str
    label: str
    outcome: CallOutcome
    index: int | None = None  # the call's number in the run (the journal's), when known

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
            data["truncated"] = self.outcome.value.truncated
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
class WorkflowResult:
    """A whole run: every stage's result, the final text, and why there is none.

    ``plan`` is set when the workflow was a research ``Plan``: then ``answers`` are its
    questions' outcomes, ``synthesis`` the synthesis call's (None: not made) and ``stats`` the
    research phase's timings. ``parsed`` is the final answer's structured value (a
    ``synthesis_schema``'s, or the last stage's ``schema``'s), None without one.
    """

    workflow: Workflow
    stages: tuple[StageResult, ...]
    status: Status
    reason: str | None = None
    model: str = ""
    plan: Plan | None = None
    settings: ModelSettings = field(default_factory=ModelSettings)
    research_stats: Stats | None = None
    run: RunInfo | None = None
    """The run in the journal and its cost (the Python API sets it; ``to_dict`` includes it)."""

    @classmethod
    def from_answers(
        cls,
        plan: Plan,
        answers: Sequence[Answer],
        synthesis: CallOutcome | None,
        status: Status,
        stats: Stats,
        reason: str | None = None,
        settings: ModelSettings | None = None,
        *,
        min_answers: int = 1,
        fail_fast: bool = False,
    ) -> WorkflowResult:
        """A research plan's result from its answers and synthesis (a journal read back, a
        test's made-up run): the two stages rebuilt around them."""
        settings = settings or ModelSettings()
        workflow = plan.workflow(min_answers=min_answers, fail_fast=fail_fast)
        research_stage, synthesis_stage = workflow.stages
        branches = tuple(
            Branch(f"{RESEARCH}.{n}", a.question, a.outcome, n - 1)
            for n, a in enumerate(answers, 1)
        )
        failed = any(isinstance(b.outcome, Rejected) for b in branches)
        arrived = [b.data for b in branches if isinstance(b.outcome, Fulfilled)]
        research_status = StageStatus.PARTIAL if failed else StageStatus.FULFILLED
        if synthesis is None and reason is not None:
            research_status = StageStatus.FAILED
        stages = [StageResult(research_stage, research_status, branches, arrived)]
        if synthesis is None:
            stages.append(StageResult(synthesis_stage, StageStatus.SKIPPED, reason=reason))
        else:
            label = f"{plan.title} for {plan.topic}"
            branch = Branch(SYNTHESIS, label, synthesis, len(answers))
            ok = isinstance(synthesis, Fulfilled)
            stages.append(
                StageResult(
                    synthesis_stage,
                    StageStatus.FULFILLED if ok else StageStatus.FAILED,
                    (branch,),
                    branch.data,
                    None if ok else reason,
                )
            )
        return cls(workflow, tuple(stages), status, reason, settings.model, plan, settings, stats)

    @property
    def final(self) -> StageResult | None:
        """The last stage that ran (a route's branch not taken did not)."""
        ran = [r for r in self.stages if r.status is not StageStatus.NOT_CHOSEN]
        return ran[-1] if ran else None

    @property
    def text(self) -> str | None:
        """The result's text: the synthesis, or the last stage's answer; None without one."""
        if self.plan is not None:
            synthesis = self.synthesis
            return synthesis.value.text if isinstance(synthesis, Fulfilled) else None
        final = self.final
        if final is None or not final.ok:
            return None
        value = final.value
        return value if isinstance(value, str) else as_text(value)

    @property
    def parsed(self) -> Any:
        """The final answer's structured value, as the schema's type (a pydantic model's
        instance, or JSON data); None when it was not asked for in a schema, or failed."""
        final = self.final
        if final is None or not final.ok or len(final.branches) != 1:
            return None
        outcome = final.branches[0].outcome
        return outcome.value.parsed if isinstance(outcome, Fulfilled) else None

    def stage(self, name: str) -> StageResult:
        return next(r for r in self.stages if r.name == name)

    @property
    def answers(self) -> tuple[Answer, ...]:
        """A research plan's questions and their outcomes, in order (a plan of stages: none)."""
        if self.plan is None:
            return ()
        return tuple(Answer(b.label, b.outcome) for b in self.stage(RESEARCH).branches)

    @property
    def synthesis(self) -> CallOutcome | None:
        """A research plan's synthesis call, None when none was made."""
        if self.plan is None:
            return None
        branches = self.stage(SYNTHESIS).branches
        return branches[0].outcome if branches else None

    @property
    def stats(self) -> Stats:
        """The research phase's timings (a plan of stages: every call's, no wall time)."""
        if self.research_stats is not None:
            return self.research_stats
        return Stats.of(self.outcomes, wall_time=0.0, usage=self.usage)

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
        """The result as JSON data: the document ``--json`` prints (``run`` and ``cost`` when
        the result has its ``run``, as the Python API's results do)."""
        if self.run is None:
            return result_document(self)
        info = self.run.to_dict()
        return result_document(self, run=info["run"], cost=info["cost"])


StagedResult = WorkflowResult
"""The name a plan of stages' result had; the one result type now."""


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


__all__ = [
    "Branch",
    "StageResult",
    "StageStatus",
    "StagedResult",
    "Status",
    "WorkflowResult",
    "group",
]
