"""A research plan: independent questions fanned out, then one synthesis over what arrived.

A ``Plan`` is the two-stage workflow fanwise began with, and it runs as one (``Plan.workflow``:
a ``research`` stage of questions, then a ``synthesis`` stage) on the one stages runner, into the
one ``WorkflowResult``. What is its own lives here: the questions' calls (a question asked of
several models is one call each, each routed by ``ModelSettings.for_model``), the synthesis
prompt that names what is missing, the quorum (``min_answers``) and fail-fast reasons, and the
research phase's timings (``Stats``).
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from fanwise.calls import Call, CallOutcome, brief
from fanwise.context import ANTHROPIC_LONG_TTL_AFTER, Material, block, warm_for
from fanwise.models.base import Request, Usage
from fanwise.models.settings import ModelSettings
from fanwise.outcome import Attempt, ErrorKind, Fulfilled, Rejected
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
    over the wall time (``overlap``) measures how many calls were out at once, not how much
    sooner they finished: a server that takes one request at a time shows an overlap of ~n/2
    and no speed-up. ``sequential`` estimates the calls one after another without that wait,
    from the answers' own timings (``_sequential``).
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
            sequential=_sequential(outcomes, wall_time),
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
        """How much sooner than the same calls one after another, estimated from what was
        measured (``sequential`` over the wall time, never above ``overlap``). None where that
        would mislead: fewer than two calls sent (every answer from the journal, say), none
        answered, or the run aborted (its wall time is not the work's)."""
        overlap = self.overlap
        if overlap is None or self.fulfilled == 0:
            return None
        if self.sequential is None:  # a run journaled before it was kept
            return overlap
        return min(overlap, self.sequential / self.wall_time)

    def speedup_text(self) -> str:
        """The speed-up as a person reads it, or why there is none."""
        speedup = self.speedup
        if speedup is not None and speedup >= SPEEDUP_SHOWN:
            return f"{speedup:.1f}× faster than one after another"
        overlap = self.overlap
        if speedup is not None and overlap is not None and overlap >= SPEEDUP_SHOWN:
            return (
                f"no faster than one after another ({overlap:.1f} calls out at once on "
                "average, but the server took them in turn)"
            )
        if speedup is not None:
            return "no faster than one after another (the calls went out one at a time)"
        if self.aborted:
            return "no speed-up: the run was aborted"
        if self.sent == 0 and self.fulfilled:
            return "no speed-up: every answer came from the journal"
        if self.fulfilled == 0:
            return "no speed-up: no call was answered"
        if self.sent < 2:
            return "no speed-up: one call was sent"
        return "no speed-up to show"

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


SPEEDUP_SHOWN = 1.25
"""Below this estimate the summary says the calls went no faster than one after another: a
speed-up this small is within the estimate's noise (answers of one size vary by a fifth)."""


def _sequential(outcomes: Sequence[CallOutcome], wall_time: float) -> float | None:
    """The sent calls one after another, estimated from what was measured; None when nothing
    was answered.

    A call's service time includes any wait inside the server. Which explains the answers'
    times better: each call alone (its service time proportional to its own output tokens), or
    a queue the server works through a few at a time (proportional to all the tokens answered
    while the call was out, its own included)? Alone, each call's service time counts, capped
    by its tokens at the fastest rate any answer showed; a close fit goes to the queue, which
    claims less (``ALONE_FITS``). Through a queue, the server answered about k at a time, k
    being how much faster a call's own rate (read off the time between answers, which a slow
    first answer does not skew) is than the queue's; the calls one after another would have
    taken k times the wall time (k = 1: llama.cpp's server).
    """
    answered = [o for o in outcomes if isinstance(o, Fulfilled) and o.attempts]
    if not answered:
        return None
    fastest = min(o.attempts[-1].service for o in answered)
    failed = (o for o in outcomes if o.attempts and not isinstance(o, Fulfilled))
    rest = sum(min(o.service_time, fastest) for o in failed)
    windows = [_window(o.attempts[-1]) for o in answered]
    tokens = [_output_tokens(o) for o in answered]
    if not all(tokens):
        tokens = [1] * len(answered)  # unknown: the calls count alike
    alone = [_span(w) / n for w, n in zip(windows, tokens, strict=True)]
    rate = min(alone)
    shared = _overlapping(windows)  # a call out on its own waited for no other: whole
    served = sum(
        min(o.service_time, rate * n) if busy else o.service_time
        for o, n, busy in zip(answered, tokens, shared, strict=True)
    )
    queue = _queue_rates(windows, tokens)
    if len(answered) < 2 or _spread(alone) < ALONE_FITS * _spread(queue):
        return rest + served
    # k: a call's own rate (from the time between answers) over the queue's, rounded down
    # unless within a quarter of the next
    own = statistics.median(_gap_rates(windows, tokens))
    at_once = max(1, math.floor(own / statistics.median(queue) + 0.25)) if min(queue) > 0 else 1
    return rest + min(served, at_once * wall_time)


def _overlapping(windows: list[tuple[float, float]]) -> list[bool]:
    """For each window, whether another one overlaps it."""
    order = sorted(range(len(windows)), key=lambda i: windows[i])
    shared = [False] * len(windows)
    reach, last = -math.inf, -1  # the latest end so far, and whose it is
    for i in order:
        sent, back = windows[i]
        if sent < reach:
            shared[i] = shared[last] = True
        if back > reach:
            reach, last = back, i
    return shared


ALONE_FITS = 0.5
"""How much better "each call alone" must fit the answers' timings than "a queue" to be
believed: the queue credits no more than the server showed, so a close call goes to it (a
one-at-a-time server whose first answer is slow fits both about as well: llama.cpp's first
answer under load took 3.9 s, the next two 1.3 s each)."""


def _window(attempt: Attempt) -> tuple[float, float]:
    """When the attempt's request went out and when its answer came back."""
    return attempt.started + attempt.queued, attempt.started + attempt.duration


def _span(window: tuple[float, float]) -> float:
    return window[1] - window[0]


def _queue_rates(windows: list[tuple[float, float]], tokens: list[int]) -> list[float]:
    """Each call's service time over the output tokens answered while it was out (its own
    too): seconds a token, were the server working through one queue."""
    order = sorted(range(len(windows)), key=lambda i: windows[i][1])
    backs = [windows[i][1] for i in order]
    sums = list(itertools.accumulate((tokens[i] for i in order), initial=0))
    rates = []
    for sent, back in windows:
        ahead = sums[bisect.bisect_right(backs, back)] - sums[bisect.bisect_right(backs, sent)]
        rates.append((back - sent) / max(ahead, 1))
    return rates


def _gap_rates(windows: list[tuple[float, float]], tokens: list[int]) -> list[float]:
    """Seconds a token of each answer that came back a while after the one before it (or
    after its request): through a queue, the time a call took on its own. Answers back at
    about the same moment (a few served at once) give none."""
    gaps = []
    previous = -math.inf
    for i in sorted(range(len(windows)), key=lambda i: windows[i][1]):
        sent, back = windows[i]
        gaps.append((back - max(sent, previous), tokens[i]))
        previous = back
    longest = max(gap for gap, _ in gaps)
    return [gap / n for gap, n in gaps if gap > longest / 10] or [longest]


def _spread(values: list[float]) -> float:
    """The standard deviation relative to the mean (0 for none, or a zero mean)."""
    mean = sum(values) / len(values) if values else 0.0
    if mean <= 0:
        return 0.0
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) / mean


def _output_tokens(outcome: Fulfilled[Any]) -> int:
    usage = getattr(outcome.value, "usage", None)
    return usage.output_tokens if isinstance(usage, Usage) else 0


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
    "SPEEDUP_SHOWN",
    "SYNTHESIS",
    "Answer",
    "Plan",
    "Stats",
    "cache_ttl",
    "no_synthesis_reason",
    "synthesis_prompt",
    "warm_first",
]
