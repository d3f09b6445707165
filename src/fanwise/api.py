"""fanwise from Python in one call: ``research`` (fan out, then synthesize), ``ask_all`` (the
fan-out alone), ``run`` (a ``Workflow`` of stages) and ``resume`` (finish a journaled run), each
with an ``a``-prefixed twin for async code.

Each takes the values the CLI's flags give (``engine="batch"``, ``max_cost=``, ``rpm=``...) as
keyword arguments, or one ``config=RunConfig(...)``; both become the same ``RunConfig`` the CLI
builds, and run through the same ``open_run``: the model picked as the CLI picks it (OpenAI when
``OPENAI_API_KEY`` is set, a ``claude-*`` model on Anthropic, else the offline model, with an
``OfflineModelWarning`` saying so), the engine the config names, and, with ``journal=True`` (or
a path), every call recorded as it settles, so that ``fanwise runs``, ``fanwise show RUN`` and
``fanwise.resume(RUN)`` see the run and ``cache=True`` answers repeats for free. A result's
``run`` (``result.to_dict()["run"]``) says which run it was and ``cost`` what it cost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import warnings
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from fanwise.config import OpenRun, RunConfig, open_run
from fanwise.config.open import run_settings
from fanwise.config.stored import resumed_config, stored_args
from fanwise.context import Material
from fanwise.engine import Call, CallOutcome
from fanwise.events import Observer, PhaseFinished, PhaseStarted, RunStarted
from fanwise.factory import (
    OFFLINE_NOTE,
    Api,
    ConfigError,
    OfflineModelWarning,
    Transport,
    _caller_stacklevel,
)
from fanwise.models.base import DeltaSink, Model, Request
from fanwise.models.offline import OfflineSettings
from fanwise.models.providers import PROVIDERS
from fanwise.models.settings import ModelSettings
from fanwise.plans import LoadedPlan, LoadedWorkflow
from fanwise.schemas import Schema
from fanwise.stages.model import SchemaSource, Workflow
from fanwise.stages.research import Plan
from fanwise.stages.result import WorkflowResult
from fanwise.stages.runner import run_workflow
from fanwise.stages.shape import result_shape

if TYPE_CHECKING:
    from fanwise.stages import StagedResult

T = TypeVar("T")
P = ParamSpec("P")
JournalChoice = bool | str | os.PathLike[str]
"""``False``: no journal; ``True``: ``$FANWISE_HOME/journal.db``; a path: that file."""


def make_config(
    config: RunConfig | None,
    model: str | Model | None,
    journal: JournalChoice,
    environ: Mapping[str, str],
    **values: Any,
) -> RunConfig:
    """The run's config: ``config`` as given, else one from the keyword arguments (the
    provider resolved once, against ``environ``); a given ``Model`` names its own provider."""
    if config is not None:
        return config
    given = model is not None and not isinstance(model, str)
    journal_path = None if isinstance(journal, bool) else os.fspath(journal)
    provider = values.pop("provider", "auto")
    offline: OfflineSettings | None = values.pop("offline", None)
    if given:
        assert isinstance(model, Model)
        provider = model.name if model.name in PROVIDERS else "openai"
    made = RunConfig.from_values(
        provider=provider,
        environ=environ,
        model=model if isinstance(model, str) else None,
        journal=journal is not False,
        journal_path=journal_path,
        offline=offline or OfflineSettings(),
        **values,
    )
    if made.provider == "offline" and provider in (None, "", "auto"):
        warnings.warn(OFFLINE_NOTE, OfflineModelWarning, stacklevel=_caller_stacklevel())
    return made


def model_settings(config: RunConfig, plan_model: Mapping[str, Any] | None = None) -> ModelSettings:
    """What every call asks with (``fanwise.config.open.run_settings``)."""
    return run_settings(config, plan_model)


def _given(model: str | Model | None) -> Model | None:
    return None if model is None or isinstance(model, str) else model


def _with_run(result: T, opened: OpenRun) -> T:
    """The result with its run and cost (``result.run``, in ``to_dict()``)."""
    return dataclasses.replace(result, run=opened.info())  # type: ignore[type-var]


async def aresearch(
    topic: str,
    questions: Sequence[str],
    *,
    instructions: str | None = None,
    model: str | Model | None = None,
    provider: str = "auto",
    concurrency: int = 8,
    journal: JournalChoice = False,
    cache: bool = False,
    timeout: float | None = None,
    deadline: float | None = None,
    retries: int = 3,
    min_answers: int = 1,
    fail_fast: bool = False,
    reasoning_effort: str | None = None,
    base_url: str | None = None,
    api: Api = "responses",
    transport: Transport = "aiohttp",
    offline: OfflineSettings | None = None,
    on_event: Observer | None = None,
    on_delta: DeltaSink | None = None,
    environ: Mapping[str, str] = os.environ,
    schema: SchemaSource | None = None,
    synthesis_schema: SchemaSource | None = None,
    repair: bool = True,
    context: Sequence[str | os.PathLike[str]] = (),
    warm: bool = True,
    max_output_tokens: int | None = None,
    engine: str = "live",
    max_cost: float | None = None,
    **settings: Any,
) -> WorkflowResult:
    """Ask every question about ``topic`` at once, then synthesize one answer from those that
    arrived (``result.text``); ``await`` it in async code, or call ``research`` elsewhere.

    ``model`` is a model name (default ``gpt-5``) or a ready ``Model``. ``instructions`` are
    added to the synthesis prompt. ``deadline`` bounds the research phase in seconds;
    ``min_answers`` is the quorum for a synthesis; ``fail_fast`` stops at the first failure.
    ``journal``/``cache``: see the module docstring (``cache`` alone uses the default journal).
    ``engine`` is ``live``, ``batch`` (OpenAI's Batch API or Anthropic's Message Batches, half
    price) or ``ray``; ``max_cost`` (dollars) stops launching calls before the run passes it.
    Any other ``RunConfig`` setting (``rpm``, ``tpm``, ``endpoints``, ``workers``, ``prices``...)
    is taken by name, or a whole ``config=RunConfig(...)``.

    ``schema`` (a pydantic model class or a JSON Schema dict) asks every research answer for
    structured output, ``synthesis_schema`` the synthesis: each answer is validated, its value
    in ``outcome.value.parsed`` (``parsed`` in ``result.to_dict()``); an answer that breaks it
    is asked again with the error appended (``repair=False``: the same request is resent).

    ``context`` is material every question is about (each item a text, or a path to a file):
    sent once before each question, the same bytes in every call, so the provider caches it;
    ``warm`` sends one question first so the others find it cached (docs/caching.md).
    ``max_output_tokens`` caps every answer and the synthesis, in the field the API and
    server honour.
    """
    config = make_config(
        settings.pop("config", None), model, journal, environ,
        provider=provider, concurrency=concurrency, cache=cache, timeout=timeout,
        deadline=deadline, retries=retries, reasoning_effort=reasoning_effort,
        base_url=base_url, api=api, transport=transport, offline=offline, repair=repair,
        engine=engine, max_cost=max_cost, max_output_tokens=max_output_tokens, **settings,
    )  # fmt: skip
    plan = Plan(
        topic,
        questions,
        schema=schema,
        synthesis_schema=synthesis_schema,
        context=_materials(context),
    )
    if instructions:
        prompt = f"{plan.synthesis_instructions}\n\n{instructions.strip()}"
        plan = dataclasses.replace(plan, synthesis_instructions=prompt)
    if fail_fast and config.engine == "batch":
        raise ConfigError("fail_fast", "the batch engine cannot stop at the first failure")
    return await _research(
        plan, {}, config, _given(model), min_answers=min_answers, fail_fast=fail_fast,
        warm=warm, on_event=on_event, on_delta=on_delta, environ=environ,
    )  # fmt: skip


async def _research(
    plan: Plan,
    plan_model: Mapping[str, Any],
    config: RunConfig,
    given: Model | None,
    *,
    min_answers: int,
    fail_fast: bool,
    warm: bool = True,
    on_event: Observer | None,
    on_delta: DeltaSink | None,
    environ: Mapping[str, str],
    resume: int | None = None,
    settings: ModelSettings | None = None,
) -> WorkflowResult:
    settings = settings or model_settings(config, plan_model)
    spec = {
        "plan": plan.to_dict(),
        "plan_model": dict(plan_model),
        "settings": dataclasses.asdict(settings),
        "args": {"min_answers": min_answers, "fail_fast": fail_fast, "warm": warm},
    }
    opened = open_run(
        config, kind="workflow", topic=plan.topic, spec=spec, total=len(plan.questions) + 1,
        resume=resume, model=given, environ=environ,
        models=(m for ms in plan.question_models for m in ms),
    )  # fmt: skip
    async with opened:
        result = await run_workflow(
            plan,
            opened.engine(on_event),
            settings=settings,
            fail_fast=fail_fast,
            min_answers=min_answers,
            deadline=opened.config.seconds_left(),
            on_delta=on_delta,
            warm=warm,
        )
        opened.finish(
            result.status.value,
            reason=result.reason,
            summary={"stats": result.stats.to_dict(), "shape": result_shape(result)},
        )
    return _with_run(result, opened)


def _materials(items: Sequence[str | os.PathLike[str]]) -> tuple[Material, ...]:
    """Each item as shared context: a path's file, read whole, or the text itself."""
    if isinstance(items, str | os.PathLike):
        items = [items]
    materials = []
    for number, item in enumerate(items, 1):
        if isinstance(item, os.PathLike):
            path = Path(item)
            materials.append(Material(path.name, path.read_text(encoding="utf-8-sig")))
        else:
            materials.append(Material(f"context {number}", str(item)))
    return tuple(materials)


async def aask_all(
    prompts: Iterable[str | Request],
    *,
    instructions: str | None = None,
    model: str | Model | None = None,
    provider: str = "auto",
    concurrency: int = 8,
    journal: JournalChoice = False,
    cache: bool = False,
    timeout: float | None = None,
    deadline: float | None = None,
    retries: int = 3,
    fail_fast: bool = False,
    reasoning_effort: str | None = None,
    base_url: str | None = None,
    api: Api = "responses",
    transport: Transport = "aiohttp",
    offline: OfflineSettings | None = None,
    on_event: Observer | None = None,
    environ: Mapping[str, str] = os.environ,
    schema: SchemaSource | None = None,
    repair: bool = True,
    engine: str = "live",
    max_cost: float | None = None,
    **settings: Any,
) -> list[CallOutcome]:
    """Send every prompt at once; one outcome per prompt, in the order given: ``Fulfilled``
    (``.value.text``) or ``Rejected`` (``.kind``, ``.message``), never an exception for a call
    that failed. A prompt is a string (sent with ``instructions`` as the system message) or a
    ``Request``, sent as it is. With a ``schema`` (a pydantic model class or a JSON Schema
    dict), each answer is asked for in it and validated: ``.value.parsed`` holds its value.
    ``engine``, ``max_cost`` and the other settings: as ``research`` takes them. A research
    ``Plan`` (the two-stage workflow ``research`` makes) runs as ``research`` runs it."""
    config = make_config(
        settings.pop("config", None), model, journal, environ,
        provider=provider, concurrency=concurrency, cache=cache, timeout=timeout,
        deadline=deadline, retries=retries, reasoning_effort=reasoning_effort,
        base_url=base_url, api=api, transport=transport, offline=offline, repair=repair,
        engine=engine, max_cost=max_cost, **settings,
    )  # fmt: skip
    model_settings_ = model_settings(config)
    wanted = None if schema is None else Schema.of(schema)  # a bad one refused before any call
    calls = [
        Call(
            p if isinstance(p, Request) else model_settings_.request(p, instructions), schema=wanted
        )
        for p in prompts
    ]
    spec = {"settings": dataclasses.asdict(model_settings_)}
    topic = f"{len(calls)} prompts"
    opened = open_run(
        config, kind="ask_all", topic=topic, spec=spec, total=len(calls), model=_given(model),
        environ=environ,
    )  # fmt: skip
    async with opened:
        engine_ = opened.engine(on_event)

        async def fan_out() -> list[CallOutcome]:
            engine_.emit(PhaseStarted("batch", len(calls), engine_.now()))
            left = opened.config.seconds_left()
            outcomes = await engine_.run(calls, deadline=left, fail_fast=fail_fast)
            engine_.emit(PhaseFinished("batch", engine_.now()))
            return outcomes

        started = RunStarted("ask_all", "", topic, engine_.now())
        outcomes = await engine_.announced(started, fan_out(), lambda done: (_status(done), None))
        opened.finish(_status(outcomes))
    return outcomes


def _status(outcomes: Sequence[CallOutcome]) -> str:
    """``complete`` when every call was answered, ``partial`` when some were, else
    ``no_result``."""
    fulfilled = sum(o.status == "fulfilled" for o in outcomes)
    if not fulfilled:
        return "no_result"
    return "complete" if fulfilled == len(outcomes) else "partial"


async def arun(
    workflow: Workflow | Plan | LoadedPlan | LoadedWorkflow,
    *,
    model: str | Model | None = None,
    provider: str = "auto",
    concurrency: int = 8,
    journal: JournalChoice = False,
    cache: bool = False,
    timeout: float | None = None,
    deadline: float | None = None,
    retries: int = 3,
    reasoning_effort: str | None = None,
    base_url: str | None = None,
    api: Api = "responses",
    transport: Transport = "aiohttp",
    offline: OfflineSettings | None = None,
    on_event: Observer | None = None,
    environ: Mapping[str, str] = os.environ,
    engine: str = "live",
    max_cost: float | None = None,
    min_answers: int = 1,
    fail_fast: bool = False,
    **settings: Any,
) -> StagedResult:
    """Run a ``Workflow`` of stages (chain, fan-out, map, route, vote; docs/workflows.md) and
    return every stage's result; ``result.text`` is the last stage's answer. With ``journal``,
    every call is recorded as it settles (``fanwise.resume(RUN)`` or ``fanwise resume RUN``
    finishes the run), and with ``cache`` a call answered before is not sent again.
    ``engine``, ``max_cost`` and the other settings: as ``research`` takes them.

    A research ``Plan`` runs too, as the two stages it is (research, then the synthesis;
    ``min_answers`` its quorum, ``fail_fast`` its policy), on the same runner. What
    ``fanwise.load_plan`` returns runs as it is, its ``[model]`` table under the arguments
    (as ``fanwise run PLAN`` takes it)."""
    plan_model: Mapping[str, Any] = {}
    if isinstance(workflow, LoadedPlan | LoadedWorkflow):
        plan_model = workflow.model
        workflow = workflow.plan if isinstance(workflow, LoadedPlan) else workflow.workflow
        if plan_model.get("endpoints") and not settings.get("config"):
            settings.setdefault("endpoints", tuple(plan_model["endpoints"]))
    if not isinstance(workflow, Workflow | Plan):
        raise TypeError(
            "fanwise.run() takes a Workflow, a Plan or what fanwise.load_plan() returns, "
            f"not {type(workflow).__name__}"
        )
    config = make_config(
        settings.pop("config", None), model, journal, environ,
        provider=provider, concurrency=concurrency, cache=cache, timeout=timeout,
        deadline=deadline, retries=retries, reasoning_effort=reasoning_effort,
        base_url=base_url, api=api, transport=transport, offline=offline, engine=engine,
        max_cost=max_cost, **settings,
    )  # fmt: skip
    if isinstance(workflow, Plan):
        if fail_fast and config.engine == "batch":
            raise ConfigError("fail_fast", "the batch engine cannot stop at the first failure")
        return await _research(
            workflow, plan_model, config, _given(model), min_answers=min_answers,
            fail_fast=fail_fast, on_event=on_event, on_delta=None, environ=environ,
        )  # fmt: skip
    return await _stages(
        workflow, plan_model, config, _given(model), on_event=on_event, environ=environ
    )


async def _stages(
    workflow: Workflow,
    plan_model: Mapping[str, Any],
    config: RunConfig,
    given: Model | None,
    *,
    on_event: Observer | None,
    environ: Mapping[str, str],
    on_delta: DeltaSink | None = None,
    resume: int | None = None,
    settings: ModelSettings | None = None,
) -> StagedResult:
    from fanwise.stages import run_stages

    settings = settings or model_settings(config, plan_model)
    spec = {
        "workflow": workflow.to_dict(),
        "plan_model": dict(plan_model),
        "settings": dataclasses.asdict(settings),
    }
    opened = open_run(
        config, kind="stages", topic=workflow.topic or workflow.title, spec=spec,
        resume=resume, model=given, environ=environ, models=workflow.models,
    )  # fmt: skip
    async with opened:
        result = await run_stages(
            workflow,
            opened.engine(on_event),
            settings=settings,
            deadline=opened.config.seconds_left(),
            on_delta=on_delta,
        )
        summary = {
            "stats": result.to_dict()["stats"],
            "stages": result.summary(),
            "shape": result_shape(result),
        }
        opened.finish(result.status.value, reason=result.reason, summary=summary)
    return _with_run(result, opened)


async def aresume(
    run_id: int,
    *,
    journal: JournalChoice = True,
    on_event: Observer | None = None,
    on_delta: DeltaSink | None = None,
    environ: Mapping[str, str] = os.environ,
    **overrides: Any,
) -> WorkflowResult | StagedResult:
    """Finish run ``run_id`` from the journal: its answered calls are reused (no request), only
    the missing or failed ones are sent, with the run's own plan and ``RunConfig``. ``overrides``
    change what a resume may (``max_cost``, ``concurrency``, ``retries``, ``timeout``, ``rpm``,
    ``tpm``, ``base_url``, ``endpoints``, ``retry_with``). A research plan or a workflow of
    stages resumes here; a batch with ``fanwise resume RUN``."""
    from fanwise.journal import Journal
    from fanwise.journal.results import plan_from_spec, settings_from_spec
    from fanwise.paths import journal_path

    path_given = None if isinstance(journal, bool) else os.fspath(journal)
    path = journal_path(path_given, environ)
    if not path.is_file():
        raise ConfigError("journal_path", f"no journal at {path}")
    with Journal.open(path) as opened:
        record = opened.run(run_id)
    if record is None:
        raise ConfigError("run", f"no run {run_id} in the journal {path}")
    if not record.text_kept:
        raise ConfigError(
            "run", f"run {run_id} kept no prompt or answer text, so it cannot be resumed"
        )
    spec = record.spec
    config = resumed_config(spec, path_given, overrides)
    args = stored_args(spec)
    plan_model = spec.get("plan_model", {})
    if record.kind == "workflow":
        return await _research(
            plan_from_spec(spec), plan_model, config, None, on_event=on_event,
            on_delta=on_delta, environ=environ, resume=run_id,
            settings=settings_from_spec(spec), **args,
        )  # fmt: skip
    if record.kind == "stages":
        from fanwise.stages import Workflow

        return await _stages(
            Workflow.from_dict(spec["workflow"]), plan_model, config, None,
            on_event=on_event, on_delta=on_delta, environ=environ, resume=run_id,
            settings=settings_from_spec(spec),
        )  # fmt: skip
    raise ConfigError(
        "run", f"run {run_id} is a {record.kind}: resume it with `fanwise resume {run_id}`"
    )


def _blocking(twin: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """``twin`` for code that is not async: the same arguments, run in an event loop of its own."""
    name = twin.__name__.removeprefix("a")

    @functools.wraps(twin)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(twin(*args, **kwargs))
        raise RuntimeError(
            f"fanwise.{name}() runs its own event loop, so it cannot run inside one: "
            f"use `await fanwise.{twin.__name__}(...)` in async code"
        )

    blocking.__name__ = blocking.__qualname__ = name
    blocking.__doc__ = (
        f"``{twin.__name__}`` run to the end in its own event loop.\n\n{twin.__doc__}"
    )
    return blocking


research = _blocking(aresearch)
ask_all = _blocking(aask_all)
run = _blocking(arun)
resume = _blocking(aresume)


__all__ = [
    "aask_all",
    "aresearch",
    "aresume",
    "arun",
    "ask_all",
    "make_config",
    "research",
    "resume",
    "run",
]
