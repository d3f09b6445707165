"""fanwise from Python in one call: ``research`` (fan out, then synthesize), ``ask_all`` (the
fan-out alone) and ``run`` (a ``Workflow`` of stages), each with an ``a``-prefixed twin for
async code.

They pick the model as the CLI does (``fanwise.get_model``: OpenAI when ``OPENAI_API_KEY`` is
set, else the offline model, with an ``OfflineModelWarning`` saying so), run the calls through
one ``Engine`` and, with ``journal=True`` (or a path), record every call as it settles, so that
``fanwise runs`` and ``fanwise show RUN`` see the run and ``cache=True`` answers repeats for free.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from fanwise.context import Material
from fanwise.engine import Call, CallOutcome, Engine
from fanwise.events import Observer, PhaseFinished, PhaseStarted, RunStarted
from fanwise.factory import (
    Api,
    Transport,
    endpoint_label,
    get_limiter,
    get_model,
    get_settings,
    resolve_provider,
)
from fanwise.limits import Limiter, Unlimited
from fanwise.models.base import DeltaSink, Model, Request
from fanwise.models.offline import OfflineSettings
from fanwise.models.settings import ModelSettings
from fanwise.retry import RetryPolicy
from fanwise.schemas import Schema
from fanwise.stages.model import SchemaSource
from fanwise.stages.research import Plan
from fanwise.stages.result import WorkflowResult
from fanwise.stages.runner import run_workflow

if TYPE_CHECKING:
    from fanwise.journal import Journal, JournalStore
    from fanwise.stages import StagedResult, Workflow

T = TypeVar("T")
P = ParamSpec("P")
JournalChoice = bool | str | os.PathLike[str]
"""``False``: no journal; ``True``: ``$FANWISE_HOME/journal.db``; a path: that file."""


@dataclass(frozen=True, slots=True)
class _Setup:
    """How to run: the keyword arguments ``research`` and ``ask_all`` share."""

    model: str | Model | None
    provider: str
    concurrency: int
    journal: JournalChoice
    cache: bool
    timeout: float | None
    retries: int
    reasoning_effort: str | None
    base_url: str | None
    api: Api
    transport: Transport
    offline: OfflineSettings | None
    on_event: Observer | None
    environ: Mapping[str, str]
    repair: bool = True


@dataclass(slots=True)
class _Recording:
    """A run in the journal: closed with its status when the run ends, however it ends."""

    journal: Journal
    run_id: int
    store: JournalStore

    def finish(self, status: str, reason: str | None, summary: dict[str, Any]) -> None:
        summary = {**summary, "cost_usd": round(self.store.spent, 6)}
        self.journal.finish_run(self.run_id, status, reason=reason, summary=summary)


@asynccontextmanager
async def _running(
    setup: _Setup, *, kind: str, topic: str, spec: dict[str, Any], total: int | None
) -> AsyncIterator[tuple[Engine, _Recording | None]]:
    """The engine for ``setup``, recording into the journal if asked; the model closed after."""
    given = None if setup.model is None or isinstance(setup.model, str) else setup.model
    limiter: Limiter
    if given is not None:  # the caller's model: its limits and its closing are the caller's
        model, limiter, where = given, Unlimited(), given.name
    else:
        name = setup.model if isinstance(setup.model, str) else None
        provider = resolve_provider(setup.provider, setup.environ, name, base_url=setup.base_url)
        model = get_model(
            setup.provider,  # "auto" still, so that the offline model's warning is given
            base_url=setup.base_url,
            api=setup.api,
            transport=setup.transport,
            offline=setup.offline,
            environ=setup.environ,
            model=name,
        )
        limiter = get_limiter(provider, environ=setup.environ)
        seed = (setup.offline or OfflineSettings()).seed
        where = endpoint_label(provider, api=setup.api, base_url=setup.base_url, seed=seed)
    recording = None
    if setup.journal is not False or setup.cache:
        recording = _open_recording(setup, kind, topic, spec, total, where)
    engine = Engine(
        model,
        concurrency=setup.concurrency,
        timeout=setup.timeout,
        retry=RetryPolicy(retries=setup.retries),
        limiter=limiter,
        store=recording.store if recording else None,
        observer=setup.on_event,
        repair=setup.repair,
    )
    try:
        yield engine, recording
    except BaseException:
        if recording is not None:
            recording.journal.finish_run(recording.run_id, "interrupted", reason="cancelled")
        raise
    finally:
        if recording is not None:
            recording.journal.close()
        if given is None:
            await model.aclose()


def _open_recording(
    setup: _Setup,
    kind: str,
    topic: str,
    spec: dict[str, Any],
    total: int | None,
    endpoint: str,
) -> _Recording:
    # Imported here: a run without a journal does not load sqlite3 and the price table.
    from fanwise.journal import Journal, JournalStore
    from fanwise.paths import journal_path, private_dir
    from fanwise.prices import load_prices

    explicit = None if isinstance(setup.journal, bool) else os.fspath(setup.journal)
    path = journal_path(explicit, setup.environ)
    if explicit is None:  # the fanwise home, private to its owner as the CLI keeps it
        private_dir(path.parent)
    journal = Journal.open(path, secrets=[setup.environ.get("OPENAI_API_KEY")])
    run_id = journal.start_run(kind, topic, spec, endpoint=endpoint, total=total)
    store = JournalStore(
        journal, run_id, prices=load_prices(), endpoint=endpoint, cache=setup.cache
    )
    return _Recording(journal, run_id, store)


def _options_spec(setup: _Setup) -> dict[str, Any]:
    """What ``fanwise resume`` needs to run it again (never the key): the provider resolved, so
    that a resume asks the same endpoint."""
    offline = setup.offline or OfflineSettings()
    given = setup.model is not None and not isinstance(setup.model, str)
    return {
        "provider": setup.provider if given else resolve_provider(setup.provider, setup.environ),
        "model": setup.model if isinstance(setup.model, str) else None,
        "base_url": setup.base_url,
        "api": setup.api,
        "transport": setup.transport,
        "concurrency": setup.concurrency,
        "timeout": setup.timeout,
        "retries": setup.retries,
        "seed": offline.seed,
        "offline_latency": list(offline.latency),
        "offline_fail_rate": offline.fail_rate,
        "cache": setup.cache,
    }


def _settings(
    model: str | Model | None,
    provider: str,
    reasoning_effort: str | None,
    api: Api,
    environ: Mapping[str, str],
    max_output_tokens: int | None = None,
    base_url: str | None = None,
) -> ModelSettings:
    """The run's settings, on the endpoint its provider speaks (a given model's own name says
    which provider it is, when it is one of fanwise's)."""
    server = base_url or environ.get("OPENAI_BASE_URL") or None
    name: str | None = None
    resolved: str
    if isinstance(model, str) or model is None:
        name, resolved = model, resolve_provider(provider, environ, model, base_url=server)
    else:
        resolved = model.name if model.name in ("anthropic", "gemini") else "openai"
    return get_settings(
        name,
        reasoning_effort,
        api=api,
        provider=resolved,
        max_output_tokens=max_output_tokens,
        base_url=server,
    )


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
) -> WorkflowResult:
    """Ask every question about ``topic`` at once, then synthesize one answer from those that
    arrived (``result.text``); ``await`` it in async code, or call ``research`` elsewhere.

    ``model`` is a model name (default ``gpt-5``) or a ready ``Model``. ``instructions`` are
    added to the synthesis prompt. ``deadline`` bounds the research phase in seconds;
    ``min_answers`` is the quorum for a synthesis; ``fail_fast`` stops at the first failure.
    ``journal``/``cache``: see the module docstring (``cache`` alone uses the default journal).

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
    setup = _Setup(
        *(model, provider, concurrency, journal, cache, timeout, retries, reasoning_effort),
        *(base_url, api, transport, offline, on_event, environ, repair),
    )
    settings = _settings(
        model, provider, reasoning_effort, api, environ, max_output_tokens, base_url
    )
    spec = {
        "plan": plan.to_dict(),
        "plan_model": {},
        "settings": dataclasses.asdict(settings),
        "options": {**_options_spec(setup), "min_answers": min_answers},
    }
    total = len(plan.questions) + 1
    async with _running(setup, kind="workflow", topic=topic, spec=spec, total=total) as (
        engine,
        recording,
    ):
        result = await run_workflow(
            plan,
            engine,
            settings=settings,
            fail_fast=fail_fast,
            min_answers=min_answers,
            deadline=deadline,
            on_delta=on_delta,
            warm=warm,
        )
        if recording is not None:
            recording.finish(result.status.value, result.reason, {"stats": result.stats.to_dict()})
    return result


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
    max_output_tokens: int | None = None,
) -> list[CallOutcome]:
    """Send every prompt at once; one outcome per prompt, in the order given: ``Fulfilled``
    (``.value.text``) or ``Rejected`` (``.kind``, ``.message``), never an exception for a call
    that failed. A prompt is a string (sent with ``instructions`` as the system message) or a
    ``Request``, sent as it is. With a ``schema`` (a pydantic model class or a JSON Schema
    dict), each answer is asked for in it and validated: ``.value.parsed`` holds its value."""
    setup = _Setup(
        *(model, provider, concurrency, journal, cache, timeout, retries, reasoning_effort),
        *(base_url, api, transport, offline, on_event, environ, repair),
    )
    settings = _settings(
        model, provider, reasoning_effort, api, environ, max_output_tokens, base_url
    )
    wanted = None if schema is None else Schema.of(schema)  # a bad one refused before any call
    calls = [
        Call(p if isinstance(p, Request) else settings.request(p, instructions), schema=wanted)
        for p in prompts
    ]
    spec = {"settings": dataclasses.asdict(settings), "options": _options_spec(setup)}
    topic = f"{len(calls)} prompts"
    async with _running(setup, kind="ask_all", topic=topic, spec=spec, total=len(calls)) as (
        engine,
        recording,
    ):

        async def fan_out() -> list[CallOutcome]:
            engine.emit(PhaseStarted("batch", len(calls), engine.now()))
            outcomes = await engine.run(calls, deadline=deadline, fail_fast=fail_fast)
            engine.emit(PhaseFinished("batch", engine.now()))
            return outcomes

        started = RunStarted("ask_all", "", topic, engine.now())
        outcomes = await engine.announced(started, fan_out(), lambda done: (_status(done), None))
        if recording is not None:
            recording.finish(_status(outcomes), None, {})
    return outcomes


def _status(outcomes: Sequence[CallOutcome]) -> str:
    """``complete`` when every call was answered, ``partial`` when some were, else
    ``no_result``."""
    fulfilled = sum(o.status == "fulfilled" for o in outcomes)
    if not fulfilled:
        return "no_result"
    return "complete" if fulfilled == len(outcomes) else "partial"


async def arun(
    workflow: Workflow,
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
    max_output_tokens: int | None = None,
) -> StagedResult:
    """Run a ``Workflow`` of stages (chain, fan-out, map, route, vote; docs/workflows.md) and
    return every stage's result; ``result.text`` is the last stage's answer. With ``journal``,
    every call is recorded as it settles (``fanwise resume RUN`` finishes the run), and with
    ``cache`` a call answered before is not sent again."""
    from fanwise.stages import run_stages

    setup = _Setup(
        *(model, provider, concurrency, journal, cache, timeout, retries, reasoning_effort),
        *(base_url, api, transport, offline, on_event, environ),
    )
    settings = get_settings(
        model if isinstance(model, str) else None,
        reasoning_effort,
        max_output_tokens=max_output_tokens,
        base_url=base_url or environ.get("OPENAI_BASE_URL") or None,
    )
    spec = {
        "workflow": workflow.to_dict(),
        "plan_model": {},
        "settings": dataclasses.asdict(settings),
        "options": _options_spec(setup),
    }
    topic = workflow.topic or workflow.title
    async with _running(setup, kind="stages", topic=topic, spec=spec, total=None) as (
        engine,
        recording,
    ):
        result = await run_stages(workflow, engine, settings=settings, deadline=deadline)
        if recording is not None:
            summary = {"stats": result.to_dict()["stats"], "stages": result.summary()}
            recording.finish(result.status.value, result.reason, summary)
    return result


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


__all__ = ["aask_all", "aresearch", "arun", "ask_all", "research", "run"]
