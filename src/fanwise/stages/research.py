"""A research plan: independent questions fanned out, then one synthesis over what arrived.

A ``Plan`` is the two-stage workflow fanwise began with, and it runs as one (``Plan.workflow``:
a ``research`` stage of questions, then a ``synthesis`` stage) on the one stages runner, into the
one ``WorkflowResult``. What is its own lives here: the questions' calls (a question asked of
several models is one call each, each routed by ``ModelSettings.for_model``), the synthesis
prompt that names what is missing, the quorum (``min_answers``) and fail-fast reasons, and the
research phase's timings (``Stats``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from fanwise.calls import Call, CallOutcome, brief
from fanwise.context import ANTHROPIC_LONG_TTL_AFTER, Material, block, warm_for
from fanwise.models.base import Request, Usage
from fanwise.models.settings import ModelSettings
from fanwise.outcome import ErrorKind, Fulfilled, Rejected
from fanwise.schemas import Schema, schema_to_dict
from fanwise.stages.model import SchemaSource, Stage, Workflow
from fanwise.structured import jsonable, outcome_usage

DEFAULT_SYNTHESIS = (
    "Combine the research below into one clear, well-structured answer about the topic, in "
    "Markdown. Use only the information given. If some questions could not be answered, work "
    "with what is available and say briefly what is missing."
)

RESEARCH = "research"
SYNTHESIS = "synthesis"
"""The names of a plan's two stages."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What to ask and how to combine it: the questions are independent of each other.

    ``questions`` may be any sequence (kept as a tuple) of texts or whole ``Request``s (any
    endpoint and body: fanwise adds only the model it lacks). ``synthesis_instructions`` is the
    fan-in prompt; ``research_instructions``, if any, goes with every question. ``research_body``
    adds API body fields to every research call (say ``{"tools": [{"type": "web_search"}]}``),
    ``question_bodies`` to one question each (in question order, over ``research_body``), and
    ``synthesis_body`` to the synthesis call.
    ``question_models`` gives each question the models to ask it of (in question order; an
    empty tuple: the run's model): a question asked of several models has one outcome each,
    labelled ``question [model]``, so the synthesis can compare them.

    ``schema`` asks every research answer for structured output (a pydantic model class or a
    JSON Schema dict), ``question_schemas`` one question each (``None``: the plan's), and
    ``synthesis_schema`` the synthesis; each answer is validated, its value in ``parsed``.
    """

    topic: str
    questions: Sequence[str | Request]
    synthesis_instructions: str = DEFAULT_SYNTHESIS
    research_instructions: str | None = None
    title: str = "research"
    research_body: Mapping[str, Any] = field(default_factory=dict)
    question_bodies: tuple[Mapping[str, Any], ...] = ()
    synthesis_body: Mapping[str, Any] = field(default_factory=dict)
    question_models: tuple[tuple[str, ...], ...] = ()
    schema: SchemaSource | None = None
    question_schemas: tuple[SchemaSource | None, ...] = ()
    synthesis_schema: SchemaSource | None = None
    context: Sequence[Material] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "context", tuple(map(Material.of, self.context)))
        if isinstance(self.questions, str):
            raise TypeError("questions must be a sequence of questions, not one string")
        object.__setattr__(self, "questions", tuple(self.questions))
        if not self.questions:
            raise ValueError("a plan needs at least one question")
        if not self.topic.strip():  # "...to visit in ?" would be paid for, and useless
            raise ValueError("a plan's topic must not be empty")
        if any(isinstance(q, str) and not q.strip() for q in self.questions):
            raise ValueError("every question must be a non-empty string")
        if self.question_bodies and len(self.question_bodies) != len(self.questions):
            raise ValueError("question_bodies needs one body (maybe empty) per question")
        if self.question_models and len(self.question_models) != len(self.questions):
            raise ValueError("question_models needs one tuple (maybe empty) per question")
        if self.question_schemas and len(self.question_schemas) != len(self.questions):
            raise ValueError("question_schemas needs one schema (maybe None) per question")
        # Each schema is converted (and a bad one refused) here, once, before any call.
        object.__setattr__(self, "schema", _schema(self.schema))
        object.__setattr__(self, "question_schemas", tuple(map(_schema, self.question_schemas)))
        object.__setattr__(self, "synthesis_schema", _schema(self.synthesis_schema))

    def schema_for(self, index: int) -> Schema | None:
        """The schema question ``index`` is answered in: its own, else the plan's."""
        own = self.question_schemas[index] if self.question_schemas else None
        return _schema(own if own is not None else self.schema)

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON data (the journal's spec, for ``fanwise resume``)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["questions"] = [q if isinstance(q, str) else q.to_dict() for q in self.questions]
        data["schema"] = schema_to_dict(_schema(self.schema))
        data["question_schemas"] = [schema_to_dict(_schema(s)) for s in self.question_schemas]
        data["synthesis_schema"] = schema_to_dict(_schema(self.synthesis_schema))
        data["context"] = [m.to_dict() for m in self.context]
        return data

    @property
    def context_block(self) -> str | None:
        """The shared context as the one block every research call carries, if any."""
        return block(self.context) if self.context else None

    @property
    def texts(self) -> tuple[str, ...]:
        """Each question as text: a request's user text stands for it."""
        return tuple(q if isinstance(q, str) else q.prompt for q in self.questions)

    def research_calls(
        self, settings: ModelSettings, *, cache_ttl: str | None = None
    ) -> list[Call]:
        """The research phase's calls, each with its own body (the shared context first)."""
        context = self.context_block
        calls = []
        for index, (question, text) in enumerate(zip(self.questions, self.texts, strict=True)):
            if isinstance(question, Request):
                request = question.with_defaults(model=settings.model)
                calls.append(Call(request, label=text, schema=self.schema_for(index)))
                continue
            own = self.question_bodies[index] if self.question_bodies else {}
            extra = {**self.research_body, **own}
            models = self.question_models[index] if self.question_models else ()
            for model in models or (settings.model,):
                mine = settings.for_model(model)
                request = mine.request(
                    question,
                    self.research_instructions,
                    extra=extra,
                    context=context,
                    cache_ttl=cache_ttl,
                )
                label = f"{text} [{model}]" if len(models) > 1 else text
                calls.append(Call(request, label=label, schema=self.schema_for(index)))
        return calls

    def check_structured(self, settings: ModelSettings) -> None:
        """Every call that asks for a schema, built before any is sent: ``SchemaError`` now (an
        API without structured outputs, a combination it refuses), not after the research is
        paid for."""
        self.research_calls(settings)
        if self.synthesis_schema is not None:
            probe = settings.request("", extra=self.synthesis_body)
            Call(probe, schema=_schema(self.synthesis_schema))

    def synthesis_call(self, settings: ModelSettings, answers: Sequence[Answer]) -> Call:
        """The fan-in call: the answers that arrived, and what is missing."""
        return Call(
            settings.request(synthesis_prompt(self, answers), extra=self.synthesis_body),
            label=f"{self.title} for {self.topic}",
            schema=_schema(self.synthesis_schema),
        )

    def workflow(self, *, min_answers: int = 1, fail_fast: bool = False) -> Workflow:
        """This plan as the workflow it runs as: a ``research`` stage of its questions (the
        quorum ``min_answers``; ``fail_fast``: policy ``all``), then the ``synthesis``."""
        return Workflow(
            (
                Stage(
                    RESEARCH,
                    questions=tuple(map(_literal, self.texts)),
                    context=self.context,
                    schema=_schema(self.schema),
                    instructions=self.research_instructions,
                    body=dict(self.research_body),
                    policy="all" if fail_fast else "settled",
                    quorum=min_answers,
                    required=True,
                ),
                Stage(
                    SYNTHESIS,
                    prompt=f"{_literal(self.synthesis_instructions)}\n\n{{{RESEARCH}}}",
                    schema=_schema(self.synthesis_schema),
                    body=dict(self.synthesis_body),
                ),
            ),
            title=self.title,
            topic=self.topic,
        )


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    outcome: CallOutcome

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"question": self.question, "status": self.outcome.status}
        if isinstance(self.outcome, Fulfilled):
            data["answer"] = self.outcome.value.text
            if self.outcome.value.parsed is not None:
                data["parsed"] = jsonable(self.outcome.value.parsed)
            data["usage"] = self.outcome.value.usage.to_dict()
            data["cached"] = self.outcome.cached
            data["truncated"] = self.outcome.value.truncated
        else:
            data["error"] = {"kind": self.outcome.kind.value, "message": self.outcome.message}
            data["usage"] = outcome_usage(self.outcome).to_dict()
        data["latency"] = round(self.outcome.latency, 4)
        data["attempts"] = len(self.outcome.attempts)
        return data


@dataclass(frozen=True, slots=True)
class Stats:
    """The research phase's timings.

    ``sum_of_latencies`` adds up each call's whole time, waits included; ``service_time`` only
    the time its requests were out with the server, and ``queue_time`` the time fanwise's own
    limiter held them. ``sent`` counts the calls that made a request in this run (not answered
    from the journal); ``aborted`` says the run was cut short (fail-fast). ``truncated`` counts
    the fulfilled answers cut at their output-token cap (``Completion.truncated``).

    A call's service time includes any time it waited inside the server, so the service time
    over the wall time (``overlap``) is how many calls were in flight at once, on average: a
    fact, not a speed-up. A server that takes requests one at a time shows an overlap of ~n/2
    and finishes no sooner; one that answers them side by side shows the same figure and did.
    The client cannot tell the two apart (guesses from the answers' timings misfired both
    ways), so no speed-up is claimed: ``speedup`` stays None, and ``speedup_text`` states the
    overlap as measured. ``sequential`` is only read back from runs journaled when an estimate
    was kept.
    """

    fulfilled: int
    rejected: int
    wall_time: float
    sum_of_latencies: float
    synthesis_time: float
    usage: Usage
    service_time: float = 0.0
    queue_time: float = 0.0
    sent: int = 0
    aborted: bool = False
    truncated: int = 0
    sequential: float | None = None

    @classmethod
    def of(
        cls,
        outcomes: Sequence[CallOutcome],
        *,
        wall_time: float,
        synthesis: CallOutcome | None = None,
        usage: Usage | None = None,
    ) -> Stats:
        """The stats of ``outcomes`` (the research calls) run in ``wall_time`` seconds."""
        return cls(
            fulfilled=sum(isinstance(o, Fulfilled) for o in outcomes),
            rejected=sum(isinstance(o, Rejected) for o in outcomes),
            wall_time=wall_time,
            sum_of_latencies=sum(o.latency for o in outcomes),
            synthesis_time=synthesis.latency if synthesis is not None else 0.0,
            usage=usage if usage is not None else Usage(),
            service_time=sum(o.service_time for o in outcomes),
            queue_time=sum(o.queue_time for o in outcomes),
            sent=sum(1 for o in outcomes if o.attempts),
            aborted=any(
                isinstance(o, Rejected) and o.kind is ErrorKind.CANCELLED for o in outcomes
            ),
            truncated=sum(1 for o in outcomes if isinstance(o, Fulfilled) and o.value.truncated),
        )

    @property
    def overlap(self) -> float | None:
        """Service time over wall time: how many calls were out with the server at once, on
        average. None for fewer than two calls sent, or a run aborted."""
        if self.aborted or self.sent < 2 or self.wall_time <= 0 or self.service_time <= 0:
            return None
        return self.service_time / self.wall_time

    @property
    def speedup(self) -> float | None:
        """Always None: how much sooner than one after another cannot be told from the client's
        side (a server that queues requests shows the same overlap as one that runs them side
        by side). Kept for the ``--json`` document's ``speedup`` field; read ``overlap``."""
        return None

    def speedup_text(self, *, times: bool = True) -> str:
        """What was measured of the calls' overlap, as a person reads it, or why there is none:
        "2.7 calls in flight on average: 5.2 s of calls in 1.9 s", never "faster" (``times=
        False``: without the times, for a summary that shows them already)."""
        overlap = self.overlap
        if overlap is not None and self.fulfilled:
            spent = f": {_seconds(self.service_time)} of calls in {_seconds(self.wall_time)}"
            return f"{overlap:.1f} calls in flight on average" + (spent if times else "")
        if self.aborted:
            return "no overlap figure: the run was aborted"
        if self.sent == 0 and self.fulfilled:
            return "no overlap figure: every answer came from the journal"
        if self.fulfilled == 0:
            return "no overlap figure: no call was answered"
        if self.sent < 2:
            return "no overlap figure: one call was sent"
        return "no overlap figure to show"

    def to_dict(self) -> dict[str, Any]:
        speedup = self.speedup
        return {
            "fulfilled": self.fulfilled,
            "rejected": self.rejected,
            "truncated": self.truncated,
            "wall_time": round(self.wall_time, 4),
            "sum_of_latencies": round(self.sum_of_latencies, 4),
            "service_time": round(self.service_time, 4),
            "queue_time": round(self.queue_time, 4),
            "sent": self.sent,
            "aborted": self.aborted,
            "speedup": None if speedup is None else round(speedup, 2),
            "overlap": None if self.overlap is None else round(self.overlap, 2),
            "sequential": None if self.sequential is None else round(self.sequential, 4),
            "synthesis_time": round(self.synthesis_time, 4),
            "usage": self.usage.to_dict(),
        }


def _seconds(seconds: float) -> str:
    """A duration as read in the summary: "5.2 s", or "4 ms" below a tenth of a second."""
    return f"{seconds:.1f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"


def synthesis_prompt(plan: Plan, answers: Sequence[Answer]) -> str:
    """The fan-in prompt: the answers that arrived, labelled, and what is missing."""
    arrived = [a for a in answers if isinstance(a.outcome, Fulfilled)]
    missing = [a for a in answers if isinstance(a.outcome, Rejected)]
    lines = [
        plan.synthesis_instructions.strip(),
        "",
        f"Topic: {plan.topic}",
        "",
        f"## Research ({len(arrived)} of {len(answers)} questions answered)",
        "",
    ]
    for number, answer in enumerate(arrived, 1):
        assert isinstance(answer.outcome, Fulfilled)
        lines += [f"### Q{number}: {answer.question}", answer.outcome.value.text.strip(), ""]
    if missing:
        lines += ["## Missing", "These questions could not be answered; say what is missing:"]
        lines += [f"- {brief(a.question)}" for a in missing]
        lines.append("")
    return "\n".join(lines)


def no_synthesis_reason(
    answers: Sequence[Answer],
    arrived: list[Answer],
    failed: list[Answer],
    fail_fast: bool,
    min_answers: int,
) -> str | None:
    if fail_fast and failed:
        causes = [
            a
            for a in failed
            if isinstance(a.outcome, Rejected) and a.outcome.kind is not ErrorKind.CANCELLED
        ] or failed
        first = min(causes, key=lambda a: a.outcome.started + a.outcome.latency)
        assert isinstance(first.outcome, Rejected)
        return (
            f"fail-fast: {first.question!r} failed ({first.outcome.kind}: "
            f"{first.outcome.message}); the other calls still running were cancelled"
        )
    if not arrived:
        return f"all {len(answers)} research questions failed; no synthesis call was made"
    if len(arrived) < min_answers:
        return (
            f"only {len(arrived)} of {len(answers)} answers arrived, fewer than the "
            f"{min_answers} required; no synthesis call was made"
        )
    return None


def warm_first(plan: Plan, calls: list[Call], model_name: str) -> bool:
    """Whether the research calls share a prefix the provider would cache (``context.py``)."""
    context = plan.context_block
    if context is None:
        return False
    prefix = f"{plan.research_instructions or ''}{context}"
    return warm_for(prefix, [c.request for c in calls], model_name)


def cache_ttl(waves: int) -> str | None:
    """Anthropic's 1-hour cache for a run expected to outlast the 5-minute one (a wave of
    calls counted as a minute, generously); None: the default 5 minutes."""
    return "1h" if waves * 60 > ANTHROPIC_LONG_TTL_AFTER else None


def _literal(text: str) -> str:
    """``text`` as a stage template that stands for itself (its braces escaped)."""
    return text.replace("{", "{{").replace("}", "}}")


def _schema(source: Any) -> Schema | None:
    return None if source is None else Schema.of(source)


__all__ = [
    "DEFAULT_SYNTHESIS",
    "RESEARCH",
    "SYNTHESIS",
    "Answer",
    "Plan",
    "Stats",
    "cache_ttl",
    "no_synthesis_reason",
    "synthesis_prompt",
    "warm_first",
]
