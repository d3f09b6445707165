"""Runs a ``Workflow`` on the one ``Engine``: each stage's calls through the journal, in order.

The one runner: a plan of stages (``run_stages``) and a research plan (``run_workflow``: its
two stages, ``research`` then ``synthesis``, with the plan's own calls, quorum and reasons) both
run here, into the one ``WorkflowResult`` with the one ``Status``.

Every call of every stage goes through ``Engine.run``, so it is journaled the moment it settles
and keyed by its content: a resume (or ``--cache``) finds each answered call again and sends
only the missing or failed ones. A map's items come from its source stage's answer, which a
resume reads back from the journal, so the map's calls (and keys) come out the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fanwise.calls import Call, CallOutcome, brief
from fanwise.context import cached_request, explicit_worthy, tokens, warm_for
from fanwise.dispatch.base import Warm
from fanwise.engine import Engine
from fanwise.events import PhaseFinished, PhaseStarted, RunStarted, StageFinished, StageStarted
from fanwise.models.base import (
    CachesContext,
    DeltaSink,
    Endpoint,
    ExplicitCache,
    Request,
    Usage,
)
from fanwise.models.settings import ModelSettings
from fanwise.outcome import Fulfilled, Rejected
from fanwise.stages import cite
from fanwise.stages.model import Stage, Workflow
from fanwise.stages.research import (
    RESEARCH,
    SYNTHESIS,
    Answer,
    Plan,
    Stats,
    cache_ttl,
    no_synthesis_reason,
    warm_first,
)
from fanwise.stages.result import Branch, StageResult, StageStatus, Status, WorkflowResult
from fanwise.stages.template import PathError, as_text, placeholders, render, walk
from fanwise.structured import outcome_usage

_BLOCKING = (StageStatus.FAILED, StageStatus.SKIPPED)


def stage_request(
    settings: ModelSettings, stage: Stage, prompt: str, model: str | None = None
) -> Request:
    """The one place a stage's request is built: its model, instructions and body extras.

    A stage's own model (or a vote's) is routed by ``ModelSettings.for_model``, as a research
    question's is: a ``claude-*`` stage goes to Anthropic's Messages API, a ``gemini-*`` one to
    Chat Completions."""
    chosen = model or stage.model
    if chosen:
        settings = settings.for_model(chosen)
    context = stage.context_block
    return settings.request(prompt, stage.instructions, extra=stage.body, context=context)


def check_structured(job: Workflow | Plan, settings: ModelSettings) -> None:
    """Each stage's schema asked of each model it calls, before any call: ``SchemaError`` for
    an API without structured outputs, not a crash once the earlier stages are paid for."""
    if isinstance(job, Plan):
        job.check_structured(settings)
        return
    for stage in job.stages:
        if stage.output_schema is not None:
            for model in stage.models or (None,):
                Call(stage_request(settings, stage, "", model), schema=stage.output_schema)


def sample_key(key: str, sample: int) -> str:
    """A vote's samples ask the same thing: each gets its own key, so each is kept apart."""
    return hashlib.sha256(f"{key}/sample/{sample}".encode()).hexdigest()[:24]


async def run_stages(
    workflow: Workflow,
    engine: Engine,
    *,
    settings: ModelSettings | None = None,
    deadline: float | None = None,
    on_delta: DeltaSink | None = None,
    warm: bool = True,
) -> WorkflowResult:
    """Run the stages in order; a failed ``required`` stage stops the run. ``on_delta`` gets
    the last stage's text as it streams, when that stage is one call (a ``prompt``). A stage of
    several calls over a shared ``context`` long enough to cache sends one call first (unless
    ``warm`` is False: docs/caching.md)."""
    runner = _Runner(workflow, engine, settings or ModelSettings(), deadline, on_delta)
    runner.warm = warm
    return await engine.announced(
        RunStarted("stages", workflow.title, workflow.topic, engine.now()),
        runner.run(),
        lambda result: (result.status.value, result.reason),
    )


async def run_workflow(
    plan: Plan,
    engine: Engine,
    *,
    settings: ModelSettings | None = None,
    fail_fast: bool = False,
    min_answers: int = 1,
    deadline: float | None = None,
    on_delta: DeltaSink | None = None,
    warm: bool = True,
) -> WorkflowResult:
    """A research plan: every question at once, then one synthesis of the answers that
    arrived (when at least ``min_answers`` did; ``fail_fast``: none after a failure).
    ``deadline`` bounds the research phase, in seconds; ``on_delta`` gets the synthesis's text
    as it streams. With a shared context long enough to be cached, one question goes first and
    the others follow once its answer has begun (``warm=False``: all at once)."""
    if min_answers < 1:
        raise ValueError(f"min_answers must be at least 1, got {min_answers}")
    if min_answers > len(plan.questions):  # no synthesis could ever be made: say so up front
        raise ValueError(
            f"min_answers is {min_answers}, but the plan has only {len(plan.questions)} questions"
        )
    workflow = plan.workflow(min_answers=min_answers, fail_fast=fail_fast)
    research = _Research(plan, fail_fast, min_answers, deadline, warm)
    runner = _Runner(workflow, engine, settings or ModelSettings(), None, on_delta, research)
    return await engine.announced(
        RunStarted("workflow", plan.title, plan.topic, engine.now()),
        runner.run(),
        lambda result: (result.status.value, result.reason),
    )


@dataclasses.dataclass(slots=True)
class _Research:
    """What a research plan's two stages need besides their ``Stage``s, and the research
    phase's timings once it has run."""

    plan: Plan
    fail_fast: bool
    min_answers: int
    deadline: float | None
    warm: bool = True
    started: float = 0.0
    finished: float = 0.0
    explicit: tuple[ExplicitCache, float] | None = None
    """The explicit context cache the research calls read, and the seconds it was held."""


class StageFailed(Exception):
    """A stage that cannot go on; the message says why."""


class _Runner:
    def __init__(
        self,
        workflow: Workflow,
        engine: Engine,
        settings: ModelSettings,
        deadline: float | None,
        on_delta: DeltaSink | None = None,
        research: _Research | None = None,
    ) -> None:
        self.workflow = workflow
        self.research = research
        self.on_delta = on_delta
        self.warm = True
        self.engine = engine
        self.settings = settings
        self.deadline = None if deadline is None else engine.now() + deadline
        self.results: dict[str, StageResult] = {}
        self.next_index = 0
        self.sent_from = 0  # the index of the first call the last send numbered
        self.route_of = {
            name: stage.name
            for stage in workflow.stages
            for names in stage.branches.values()
            for name in names
        }
        self.waiting_for_route = set(self.route_of)

    async def run(self) -> WorkflowResult:
        check_structured(self.research.plan if self.research else self.workflow, self.settings)
        stopped: str | None = None
        for stage in self.workflow.stages:
            start = self.engine.now()
            if stopped is not None:
                result = StageResult(stage, StageStatus.SKIPPED, reason=stopped)
                self._finished(result)
            elif stage.name in self.waiting_for_route:
                result = self._not_run(stage)
                self._finished(result)
            elif self.research is not None:
                result = await self._plan_stage(stage, self.research)
            else:
                result = await self._stage(stage)
            result = dataclasses.replace(result, started=start, finished=self.engine.now())
            self.results[stage.name] = result
            if result.status is StageStatus.FAILED and stage.required:
                stopped = f"the required stage {stage.name!r} failed: {result.reason}"
        if self.research is not None:
            return self._finish_plan(self.research)
        return self._finish(stopped)

    def _not_run(self, stage: Stage) -> StageResult:
        """A routed stage its route did not choose, or could not choose (it failed)."""
        route = self.results[self.route_of[stage.name]]
        if route.status is StageStatus.NOT_CHOSEN:
            return StageResult(stage, StageStatus.NOT_CHOSEN, reason=route.reason)
        if route.ok:
            why = f"route {route.name!r} chose {route.value!r}"
            return StageResult(stage, StageStatus.NOT_CHOSEN, reason=why)
        return StageResult(
            stage, StageStatus.SKIPPED, reason=f"its route {route.name!r} chose no branch"
        )

    def _finish(self, stopped: str | None) -> WorkflowResult:
        results = tuple(self.results.values())
        done = WorkflowResult(self.workflow, results, Status.NO_RESULT, model=self.settings.model)
        final = done.final
        reason = stopped
        if reason is None and (final is None or not final.ok):
            why = final.reason if final is not None else "no stage ran"
            reason = f"the last stage {final.name!r} did not finish: {why}" if final else why
        if reason is not None:
            return dataclasses.replace(done, reason=reason)
        clean = all(r.status in (StageStatus.FULFILLED, StageStatus.NOT_CHOSEN) for r in results)
        status = Status.COMPLETE if clean else Status.PARTIAL
        return dataclasses.replace(done, status=status, settings=self.settings)

    # --- a research plan's two stages -----------------------------------------------------

    async def _plan_stage(self, stage: Stage, research: _Research) -> StageResult:
        """A plan's ``research`` stage (its own calls, quorum and reasons) or ``synthesis``."""
        if stage.name == RESEARCH:
            return await self._research(stage, research)
        return await self._synthesis(stage, research)

    async def _research(self, stage: Stage, research: _Research) -> StageResult:
        plan = research.plan
        waves = -(-len(plan.questions) // self.engine.live.concurrency)
        calls = plan.research_calls(self.settings, cache_ttl=cache_ttl(waves))
        warmed = research.warm and warm_first(plan, calls, self.engine.model.name)
        research.started = self.engine.now()
        self.engine.emit(PhaseStarted("research", len(calls), research.started))
        async with self._explicit_cache(plan, calls, research) as sent:
            outcomes = await self.engine.run(
                sent,
                deadline=research.deadline,
                fail_fast=research.fail_fast,
                warm=Warm.FIRST_TEXT if warmed and sent is calls else Warm.OFF,
            )
        research.finished = self.engine.now()
        self.engine.emit(PhaseFinished("research", research.finished))
        self.next_index = len(calls)
        branches = tuple(
            Branch(f"{RESEARCH}.{n}", call.label, outcome, n - 1)
            for n, (call, outcome) in enumerate(zip(calls, outcomes, strict=True), 1)
        )
        answers = [Answer(b.label, b.outcome) for b in branches]
        arrived = [a for a in answers if isinstance(a.outcome, Fulfilled)]
        failed = [a for a in answers if isinstance(a.outcome, Rejected)]
        reason = no_synthesis_reason(
            answers, arrived, failed, research.fail_fast, research.min_answers
        )
        status = StageStatus.PARTIAL if failed else StageStatus.FULFILLED
        if reason is not None:
            status = StageStatus.FAILED
        value = [b.data for b in branches if isinstance(b.outcome, Fulfilled)]
        detail: dict[str, Any] = {}
        if research.explicit is not None:
            cache, seconds = research.explicit
            detail["explicit_cache"] = {
                "model": cache.model,
                "tokens": cache.tokens,
                "seconds": round(seconds, 3),
            }
        return StageResult(stage, status, branches, value, reason, detail)

    @contextlib.asynccontextmanager
    async def _explicit_cache(
        self, plan: Plan, calls: list[Call], research: _Research
    ) -> AsyncIterator[list[Call]]:
        """The research calls to send: naming an explicit context cache (Gemini's
        ``cachedContents``, held for the phase and deleted after it) when the fan-out over the
        plan's context is large enough for one to pay; otherwise the calls as they are. Each
        keeps its key, so a resume finds it whatever cache it named."""
        model = self.engine.model
        context = plan.context_block
        if (
            not research.warm
            or context is None
            or not isinstance(model, CachesContext)
            or not explicit_worthy(tokens(context), len(calls), model.name, self.settings.model)
            or not all(c.request.endpoint is Endpoint.CHAT for c in calls)
        ):
            yield calls
            return
        ttl = max(300.0, 2 * (research.deadline or 0.0))
        cache = await model.cache_context(
            self.settings.model, plan.research_instructions, context, ttl
        )
        created = self.engine.now()
        try:
            yield [dataclasses.replace(c, request=cached_request(c.request, cache)) for c in calls]
        finally:
            with contextlib.suppress(Exception):  # the TTL ends it anyway; the answers stand
                await model.drop_cache(cache)
            research.explicit = (cache, self.engine.now() - created)

    async def _synthesis(self, stage: Stage, research: _Research) -> StageResult:
        plan = research.plan
        answers = [Answer(b.label, b.outcome) for b in self.results[RESEARCH].branches]
        call = plan.synthesis_call(self.settings, answers)
        self.engine.emit(PhaseStarted("synthesis", 1, self.engine.now()))
        index = self.next_index
        self.next_index += 1
        outcome = await self.engine.complete(call, index=index, on_delta=self.on_delta)
        self.engine.emit(PhaseFinished("synthesis", self.engine.now()))
        branch = Branch(SYNTHESIS, call.label, outcome, index)
        if isinstance(outcome, Rejected):
            why = f"the synthesis call failed: {outcome.kind}: {outcome.message}"
            return StageResult(stage, StageStatus.FAILED, (branch,), reason=why)
        return StageResult(stage, StageStatus.FULFILLED, (branch,), branch.data)

    def _finish_plan(self, research: _Research) -> WorkflowResult:
        """A research plan's status, reason and stats, as its two stages left them."""
        found, made = self.results[RESEARCH], self.results[SYNTHESIS]
        outcomes = [b.outcome for b in found.branches]
        synthesis = made.branches[0].outcome if made.branches else None
        status = Status.NO_RESULT
        if isinstance(synthesis, Fulfilled):
            status = Status.PARTIAL if found.failed else Status.COMPLETE
        usage = sum(
            (
                outcome_usage(o)
                for o in (*outcomes, synthesis)
                if o is not None and not (isinstance(o, Fulfilled) and o.cached)
            ),
            Usage(),
        )
        stats = Stats.of(
            outcomes,
            wall_time=research.finished - research.started,
            synthesis=synthesis,
            usage=usage,
        )
        return WorkflowResult(
            self.workflow,
            tuple(self.results.values()),
            status,
            found.reason or made.reason,
            self.settings.model,
            research.plan,
            self.settings,
            stats,
        )

    async def _stage(self, stage: Stage) -> StageResult:
        blocked = self._blocked_by(stage)
        if blocked is not None:
            skipped = StageResult(stage, StageStatus.SKIPPED, reason=blocked)
            self._finished(skipped)
            return skipped
        try:
            match stage.kind:
                case "route":
                    result = self._route(stage)
                case "vote":
                    result = await self._vote(stage)
                case "map":
                    result = await self._map(stage)
                case "questions":
                    prompts = [self._render(q, stage) for q in stage.questions]
                    calls = [self._call(stage, p, f"{stage.name}: {p}") for p in prompts]
                    result = await self._fan(stage, calls, prompts, {})
                case _:
                    result = await self._prompt(stage)
        except StageFailed as failed:
            result = StageResult(stage, StageStatus.FAILED, reason=str(failed))
            self._finished(result)
        return result

    def _blocked_by(self, stage: Stage) -> str | None:
        """Why ``stage`` cannot run: an earlier stage it uses has no result."""
        roots = {p.split(".")[0] for t in stage.texts() for p in placeholders(t)}
        roots |= {s.split(".")[0] for s in (stage.map, stage.route) if s}
        for root in sorted(roots):
            used = self.results.get(root)
            if used is not None and used.status in _BLOCKING:
                return f"it uses stage {root!r}, which has no result ({used.status.value})"
            if (
                used is not None
                and used.status is StageStatus.NOT_CHOSEN
                and root
                in (
                    (stage.map or "").split(".")[0],
                    (stage.route or "").split(".")[0],
                )
            ):
                return f"it uses stage {root!r}, which a route did not choose"
        return None

    # --- the kinds ---------------------------------------------------------------------------

    def _route(self, stage: Stage) -> StageResult:
        assert stage.route is not None
        value = self._source(stage.route)
        self._started(stage, 0)
        choice = as_text(value)
        if choice not in stage.branches:
            known = ", ".join(stage.branches)
            raise StageFailed(
                f"{stage.route} is {choice!r}, which is not one of its branches ({known})"
            )
        self.waiting_for_route -= set(stage.branches[choice])
        result = StageResult(stage, StageStatus.FULFILLED, value=choice, detail={"choice": choice})
        self._finished(result, f"chose {choice}")
        return result

    async def _map(self, stage: Stage) -> StageResult:
        assert stage.map is not None
        assert stage.prompt is not None
        items = self._source(stage.map)
        if not isinstance(items, list):
            raise StageFailed(f"map = {stage.map!r} is {type(items).__name__}, not a list")
        width = len(items)
        if stage.max_items is not None:
            items = items[: stage.max_items]
        prompts = [
            self._render(stage.prompt, stage, {"item": item, "index": n})
            for n, item in enumerate(items, 1)
        ]
        calls = [self._call(stage, p, f"{stage.name}: {p}") for p in prompts]
        detail = {"width": len(items), "items": width}
        return await self._fan(stage, calls, [as_text(i) for i in items], detail)

    async def _prompt(self, stage: Stage) -> StageResult:
        assert stage.prompt is not None
        prompt = self._render(stage.prompt, stage)
        cited: list[Branch] = []
        asking = stage
        if stage.cite:  # the citing rules go with the instructions, apart from the answers
            cited = self._cited_branches(stage)
            told = "\n\n".join(filter(None, (stage.instructions, cite.instructions(cited))))
            asking = dataclasses.replace(stage, instructions=told)
        self._started(stage, 1)
        call = self._call(asking, prompt, stage.name)
        if self.on_delta is not None and stage is self.workflow.stages[-1]:
            outcome = await self._stream(call, self.on_delta)
        else:
            (outcome,) = await self._send(stage, [call])
        branch = Branch(stage.name, stage.name, outcome, self.sent_from)
        if isinstance(outcome, Rejected):
            result = StageResult(stage, StageStatus.FAILED, (branch,), reason=_why(branch))
        else:
            detail: dict[str, Any] = {}
            if stage.cite:
                detail["citations"] = cite.coverage(outcome.value.text, cited)
            result = StageResult(stage, StageStatus.FULFILLED, (branch,), branch.data, None, detail)
        note = cite.summary(result.detail["citations"]) if "citations" in result.detail else ""
        self._finished(result, note)
        return result

    async def _vote(self, stage: Stage) -> StageResult:
        assert stage.prompt is not None
        assert stage.vote is not None
        prompt = self._render(stage.prompt, stage)
        models: Sequence[str | None] = stage.models or [None] * stage.vote
        calls = [
            dataclasses.replace(call, key=sample_key(call.key, n))
            for n, model in enumerate(models)
            for call in [self._call(stage, prompt, f"{stage.name} #{n + 1}", model)]
        ]
        labels = [f"{stage.name} #{n + 1}" + (f" ({m})" if m else "") for n, m in enumerate(models)]
        fanned = await self._fan(stage, calls, labels, {}, finish=False)
        if not fanned.ok:
            self._finished(fanned)
            return fanned
        answered = [b for b in fanned.branches if isinstance(b.outcome, Fulfilled)]
        if stage.judge is not None:
            return await self._judge(stage, fanned, answered)
        field = stage.pick.partition(":")[2] if stage.pick else ""
        votes = [(b, self._ballot(b, field, stage)) for b in answered]
        tally = Counter(as_text(v) for _, v in votes)
        top = max(tally.values())
        winner = next(b for b, v in votes if tally[as_text(v)] == top)
        detail = {
            "tally": dict(tally.most_common()),
            "winner": winner.id,
            "tie": sum(1 for n in tally.values() if n == top) > 1,
        }
        result = dataclasses.replace(fanned, value=winner.data, detail=detail)
        self._finished(
            result,
            "tally " + ", ".join(f"{' '.join(k.split())[:30]}: {n}" for k, n in tally.items()),
        )
        return result

    def _ballot(self, branch: Branch, field: str, stage: Stage) -> Any:
        if not field:
            return branch.data
        try:
            return walk(branch.data, field.split("."), stage.name)
        except PathError as error:
            raise StageFailed(f"pick {stage.pick!r}: {error}") from None

    async def _judge(
        self, stage: Stage, fanned: StageResult, answered: list[Branch]
    ) -> StageResult:
        assert stage.judge is not None
        candidates = "\n\n".join(f"### Candidate [{b.id}]\n{as_text(b.data)}" for b in answered)
        prompt = f"{self._render(stage.judge, stage)}\n\n{candidates}"
        judge = dataclasses.replace(stage, schema=None, models=(), cite=False)
        (outcome,) = await self._send(stage, [self._call(judge, prompt, f"{stage.name} judge")])
        branch = Branch(f"{stage.name}.judge", "judge", outcome, self.sent_from)
        branches = (*fanned.branches, branch)
        if isinstance(outcome, Rejected):
            result = StageResult(stage, StageStatus.FAILED, branches, reason=_why(branch))
        else:
            result = dataclasses.replace(
                fanned, branches=branches, value=branch.data, detail={"judged": len(answered)}
            )
        self._finished(result, f"judged {len(answered)} answers")
        return result

    async def _fan(
        self,
        stage: Stage,
        calls: list[Call],
        labels: Sequence[str],
        detail: dict[str, Any],
        *,
        finish: bool = True,
    ) -> StageResult:
        """Send a stage's calls at once and apply its failure policy."""
        self._started(stage, len(calls))
        outcomes = await self._send(stage, calls, fail_fast=stage.policy == "all")
        branches = tuple(
            Branch(f"{stage.name}.{n}", label, outcome, self.sent_from + n - 1)
            for n, (label, outcome) in enumerate(zip(labels, outcomes, strict=True), 1)
        )
        failed = [b for b in branches if isinstance(b.outcome, Rejected)]
        arrived = len(branches) - len(failed)
        need = stage.quorum or (1 if branches else 0)
        reason: str | None = None
        if stage.policy == "all" and failed:
            first = min(failed, key=lambda b: b.outcome.started + b.outcome.latency)
            reason = f"policy all: {_why(first)}; the calls still running were cancelled"
        elif arrived < need:
            which = "; ".join(_why(b) for b in failed)
            quorum = f"quorum {stage.quorum}" if stage.quorum else "at least one"
            reason = f"{arrived} of {len(branches)} answers arrived, fewer than {quorum}: {which}"
        status = StageStatus.FULFILLED if not failed else StageStatus.PARTIAL
        if reason is not None:
            status = StageStatus.FAILED
        value = [b.data for b in branches if isinstance(b.outcome, Fulfilled)]
        result = StageResult(stage, status, branches, value, reason, detail)
        if finish:
            self._finished(result, f"{arrived} of {len(branches)} answered")
        return result

    # --- the parts ---------------------------------------------------------------------------

    def _call(self, stage: Stage, prompt: str, label: str, model: str | None = None) -> Call:
        request = stage_request(self.settings, stage, prompt, model)
        return Call(request, label=label, schema=stage.output_schema)

    async def _send(
        self, stage: Stage, calls: list[Call], *, fail_fast: bool = False
    ) -> list[CallOutcome]:
        first = self.sent_from = self.next_index
        self.next_index += len(calls)
        remaining = self._remaining()
        warm = Warm.FIRST_TEXT if self.warm and self._warm_worthy(stage, calls) else Warm.OFF
        return await self.engine.run(
            calls, deadline=remaining, fail_fast=fail_fast, first_index=first, warm=warm
        )

    def _warm_worthy(self, stage: Stage, calls: list[Call]) -> bool:
        """Whether the stage's calls share a context the provider would cache."""
        context = stage.context_block
        if context is None:
            return False
        prefix = f"{stage.instructions or ''}{context}"
        return warm_for(prefix, [c.request for c in calls], self.engine.model.name)

    async def _stream(self, call: Call, on_delta: DeltaSink) -> CallOutcome:
        """The last stage's one call, its text handed to ``on_delta`` as it comes (live)."""
        index = self.sent_from = self.next_index
        self.next_index += 1
        remaining = self._remaining()
        if remaining is None:
            return await self.engine.complete(call, index=index, on_delta=on_delta)
        try:
            async with asyncio.timeout(remaining):
                return await self.engine.complete(call, index=index, on_delta=on_delta)
        except TimeoutError:
            raise StageFailed("the deadline passed while it ran") from None

    def _remaining(self) -> float | None:
        """Seconds left before the run's deadline (None: no deadline)."""
        if self.deadline is None:
            return None
        remaining = self.deadline - self.engine.now()
        if remaining <= 0:
            raise StageFailed("the deadline passed before it started")
        return remaining

    def _render(self, template: str, stage: Stage, local: dict[str, Any] | None = None) -> str:
        local = local or {}

        def lookup(path: str) -> str:
            root, *fields = path.split(".")
            try:
                if root in local:
                    return as_text(walk(local[root], fields, root))
                used = self.results[root]
                if used.status is StageStatus.NOT_CHOSEN:
                    return ""
                if not fields:
                    return self._shown(used)
                return as_text(walk(used.value, fields, root))
            except PathError as error:
                raise StageFailed(f"{{{path}}}: {error}") from None

        return render(template, lookup)

    def _shown(self, used: StageResult) -> str:
        """``{name}``: a one-call stage's answer; a fan-out's answers, each with its id."""
        if used.stage.kind not in ("questions", "map"):
            return as_text(used.value)
        parts = []
        for branch in used.branches:
            if isinstance(branch.outcome, Fulfilled):
                parts.append(f"### [{branch.id}] {branch.label}\n{as_text(branch.data)}")
            else:
                parts.append(
                    f"### [{branch.id}] {brief(branch.label)}\n(failed: no answer, "
                    f"{branch.outcome.kind.value})"
                )
        return "\n\n".join(parts)

    def _source(self, path: str) -> Any:
        root, *fields = path.split(".")
        try:
            return walk(self.results[root].value, fields, root)
        except PathError as error:
            raise StageFailed(str(error)) from None

    def _cited_branches(self, stage: Stage) -> list[Branch]:
        roots = {p.split(".")[0] for t in stage.texts() for p in placeholders(t)}
        return [
            b
            for r in self.results.values()
            if r.name in roots and r.stage.kind in ("questions", "map")
            for b in r.branches
        ]

    def _started(self, stage: Stage, total: int) -> None:
        now = self.engine.now()
        self.engine.emit(StageStarted(stage.name, stage.kind, total, now))
        if total:
            last = stage is self.workflow.stages[-1] and total == 1
            self.engine.emit(PhaseStarted("synthesis" if last else "research", total, now))

    def _finished(self, result: StageResult, note: str = "") -> None:
        if self.research is not None:  # a research plan shows as its two phases, as ever
            return
        now = self.engine.now()
        if result.branches:
            last = result.stage is self.workflow.stages[-1] and len(result.branches) == 1
            self.engine.emit(PhaseFinished("synthesis" if last else "research", now))
        note = result.reason or note
        self.engine.emit(
            StageFinished(result.name, result.stage.kind, result.status.value, note, now)
        )


def _why(branch: Branch) -> str:
    outcome = branch.outcome
    assert isinstance(outcome, Rejected)
    return f"{branch.id} ({branch.label[:60]}) failed: {outcome.kind.value}: {outcome.message}"


__all__ = ["check_structured", "run_stages", "run_workflow", "sample_key", "stage_request"]
