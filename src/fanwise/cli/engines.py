"""The model and engine the flags ask for: live (on one endpoint or a pool), the Batch API, or Ray.

Wiring only: ``fanwise.factory`` decides the model, limiter and settings, and every engine is a
library class; this module reads ``RunOptions``, hands them over, and turns the library's
errors into the CLI's (naming the flag). A pool from ``--endpoints`` is the engine's limiter
too, each endpoint under its own ``--rpm``/``--tpm``.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from fanwise.cli.errors import InputError, flag_for
from fanwise.cli.options import RunOptions
from fanwise.cli.session import Session
from fanwise.endpoints import EndpointPool
from fanwise.engine import Engine
from fanwise.events import Observer
from fanwise.factory import ConfigError, get_limiter, get_model, get_settings, resolve_provider
from fanwise.limits import Limiter
from fanwise.models import OfflineSettings, Provider
from fanwise.models.base import Model
from fanwise.models.providers import implied_provider, keyed_providers
from fanwise.models.router import ProviderRouter
from fanwise.models.settings import ModelSettings
from fanwise.retry import RetryBudget, RetryPolicy

if TYPE_CHECKING:  # fanwise.cluster loads only for --engine ray
    from fanwise.cluster import WorkerPlan

OFFLINE_NOTE = (
    "fanwise: OPENAI_API_KEY is not set, so this runs on the built-in offline model: its answers "
    "are generated locally, not by an LLM. Set the key (or --provider openai) to use OpenAI."
)
CLI_WORDS = {
    "api_key": "--provider openai needs an API key: set OPENAI_API_KEY "
    "(or use --base-url for a local OpenAI-compatible server)",
}
"""The library's errors that read better in the CLI's own words."""


def config_error(exc: ConfigError) -> InputError:
    """A library setting error as the CLI says it: with the flag that sets it."""
    return InputError(CLI_WORDS.get(exc.setting) or f"{flag_for(exc.setting)}: {exc}")


def provider(options: RunOptions, environ: Mapping[str, str] = os.environ) -> Provider:
    try:
        return resolve_provider(options.provider, environ, options.model, base_url=options.server)
    except ConfigError as exc:
        raise config_error(exc) from None


def build_limiter(options: RunOptions, environ: Mapping[str, str] = os.environ) -> Limiter:
    """--rpm/--tpm buckets; for OpenAI also the adaptive limits, unless --no-adapt."""
    return get_limiter(
        provider(options, environ),
        rpm=options.rpm,
        tpm=options.tpm,
        adapt=options.adapt,
        environ=environ,
    )


def build_model(options: RunOptions, environ: Mapping[str, str] = os.environ) -> Model:
    """The model ``fanwise.get_model`` picks for these flags (after ``check_engine``)."""
    resolved = provider(options, environ)
    check_engine(options, resolved)
    if resolved == "offline" and options.provider == "auto" and not options.quiet:
        click.echo(OFFLINE_NOTE, err=True)
    keyed = keyed_providers(environ)
    if options.provider == "auto" and len(keyed) > 1 and not options.quiet:
        click.echo(
            f"fanwise: keys are set for {', '.join(keyed)}: using {resolved} "
            "(choose with --provider)",
            err=True,
        )
    # OpenAI's Batch API needs the SDK's files and batches endpoints.
    sdk = options.engine in ("batch", "auto") and resolved == "openai"
    try:
        return get_model(
            resolved,  # resolved here, so the library's own note (a warning) is not repeated
            base_url=options.base_url,
            api=options.api,  # type: ignore[arg-type]  # a click.Choice
            transport="sdk" if sdk else options.transport,  # type: ignore[arg-type]
            endpoints=options.endpoints,
            limiter=partial(build_limiter, options, environ),
            offline=OfflineSettings(
                options.seed, options.offline_latency, options.offline_fail_rate
            ),
            environ=environ,
        )
    except ConfigError as exc:
        raise config_error(exc) from None


def model_settings(
    options: RunOptions, plan_model: Mapping[str, Any] | None = None
) -> ModelSettings:
    """--model, --reasoning-effort and --max-output-tokens over the plan's [model] table, over
    the defaults."""
    chosen = provider(options)
    # Gemini's Batch Mode is its own API: prompts there are generateContent bodies.
    native = chosen == "gemini" and options.engine in ("batch", "auto")
    api = "generateContent" if native else options.api
    return get_settings(
        options.model,
        options.reasoning_effort,
        plan_model,
        api,
        chosen,
        max_output_tokens=options.max_output_tokens,
        base_url=options.server,
    )


def build_router(
    options: RunOptions,
    model: Model,
    models: Iterable[str],
    environ: Mapping[str, str] = os.environ,
) -> Model:
    """``model``, or a router over it when ``models`` (a plan's per-question models) name other
    providers too: each provider then gets its own model and its own limits."""
    resolved = provider(options, environ)
    others = {p for p in map(implied_provider, models) if p is not None} - {resolved}
    if not others or resolved == "offline":
        return model
    if options.engine != "live" or options.endpoints:
        raise InputError(
            f"the plan asks {', '.join(sorted(others))} besides {resolved}: several providers "
            "in one run need --engine live, without --endpoints"
        )

    def make_model(name: str) -> Model:
        if name == resolved:
            return model
        transport: Any = options.transport  # a click.Choice of the Transport values
        try:
            return get_model(name, transport=transport, environ=environ)
        except ConfigError as exc:
            raise config_error(exc) from None

    router = ProviderRouter(
        resolved,
        make_model,
        lambda name: get_limiter(
            name, rpm=options.rpm, tpm=options.tpm, adapt=options.adapt, environ=environ
        ),
    )
    for name in sorted(others):  # a missing key is said now, before anything is paid for
        router.model_for(name)
    return router


def check_engine(options: RunOptions, provider: str) -> None:
    """Refuse, with the reason, the combinations an engine cannot run (exit code 2)."""
    if options.engine == "ray":
        if provider in ("anthropic", "gemini"):
            raise InputError(f"--engine ray speaks OpenAI only for now: use --engine live with "
                             f"--provider {provider}")  # fmt: skip
        from fanwise.cluster import RayMissing, import_ray

        try:
            import_ray()
        except RayMissing as exc:
            raise InputError(str(exc)) from None
    if options.engine == "auto" and options.deadline is None and options.deadline_at is None:
        raise InputError("--engine auto needs --deadline (e.g. --deadline 2h or 07:00)")
    if options.plan_only and options.engine != "auto":
        raise InputError("--plan-only: the plan is --engine auto's: add --engine auto --deadline")
    if options.engine not in ("batch", "auto"):
        return
    engine = f"--engine {options.engine}"
    if provider == "offline":
        raise InputError(
            f"{engine} needs the OpenAI Batch API: set OPENAI_API_KEY (or --base-url for "
            "an OpenAI-compatible server with /v1/batches, such as fanwise simulate)"
        )
    if options.mode == "all":
        raise InputError(f"{engine} cannot stop at the first failure: use --mode settled")
    if options.endpoints:
        raise InputError("--endpoints spreads live calls: use it with --engine live or ray")


RAY_ACTOR = {"num_cpus": 0.25, "scheduling_strategy": "SPREAD"}
"""A worker mostly waits on the network: a quarter of a core each, spread over the nodes."""


def build_engine(
    options: RunOptions, model: Model, *, observer: Observer | None, session: Session | None
) -> Engine:
    """The engine for ``options`` over ``model``, recording into ``session`` if any."""
    common: dict[str, Any] = {
        "concurrency": options.concurrency,
        "timeout": options.timeout,
        "retry": RetryPolicy(retries=options.retries, max_wait=options.max_wait),
        "retry_budget": RetryBudget(options.retry_budget),
        # A pool and a router hold each endpoint's (each provider's) own limits.
        "limiter": (
            model if isinstance(model, EndpointPool | ProviderRouter) else build_limiter(options)
        ),
        "observer": observer,
        "seed": options.seed,
        "repair": options.repair,
        **(session.engine_options() if session is not None else {}),
    }
    if options.engine == "auto":
        return auto_engine(options, model, common, session)
    if options.engine == "batch":
        # Imported here: batchapi loads the openai SDK, 0.5 s and 23 MB that every other run of
        # the CLI would pay at startup (docs/benchmarks.md).
        from fanwise.batchapi import BatchEngine, Polling

        batches, limits = batch_client(options, model)
        return BatchEngine(
            model,
            batches=batches,
            **limits,
            api="chat" if options.api == "chat" else "responses",
            polling=Polling(first=min(1.0, options.batch_poll), most=options.batch_poll),
            ledger=session.ledger() if session else None,
            retry_with=options.retry_with,  # type: ignore[arg-type]  # a click.Choice
            **common,
        )
    if options.engine == "ray":
        from fanwise.cluster import RayEngine

        start_ray(options)
        return RayEngine(
            model,
            plan=worker_plan(options),
            limits=shared_limits(options),
            workers=options.workers,
            actor_options=RAY_ACTOR,
            **common,
        )
    return Engine(model, **common)


def batch_client(options: RunOptions, model: Model) -> tuple[Any, dict[str, Any]]:
    """The Batch API of the run's provider, and its file limits as ``limits=`` (if not
    OpenAI's)."""
    from fanwise.batchapi import BatchClient
    from fanwise.models.openai import OpenAIModel

    if model.name == "anthropic":  # Message Batches (batchapi/anthropic.py)
        from fanwise.batchapi.anthropic import LIMITS, AnthropicBatchClient

        return AnthropicBatchClient(base_url=options.base_url), {"limits": LIMITS}
    if model.name == "gemini":  # Batch Mode (batchapi/gemini.py): Gemini's own API
        from fanwise.batchapi import gemini as gemini_batch

        client = gemini_batch.GeminiBatchClient(base_url=options.base_url)
        return client, {"limits": gemini_batch.LIMITS}
    if isinstance(model, OpenAIModel):  # build_model sees to it
        return BatchClient(model.client), {}
    raise InputError(f"--engine {options.engine} needs the OpenAI, Anthropic or Gemini provider")


def auto_engine(
    options: RunOptions, model: Model, common: dict[str, Any], session: Session | None
) -> Engine:
    """``--engine auto``: an ``Engine`` whose dispatch is ``Auto`` (dispatch/auto.py)."""
    from fanwise.dispatch.auto import Auto

    assert options.deadline_at is not None, "with_deadline() fixes it before the engine"
    batches, limits = batch_client(options, model)
    engine = Engine(model, **common)
    engine.dispatch = Auto(
        batches,
        engine.live,
        deadline=options.deadline_at,
        api="chat" if options.api == "chat" else "responses",
        ledger=session.ledger() if session else None,
        most_poll=options.batch_poll,
        latency=options.live_latency,
        note=None if options.quiet else lambda line: click.echo(line, err=True),
        **limits,
    )
    return engine


def with_deadline(options: RunOptions, now: float | None = None) -> RunOptions:
    """``--engine auto``'s deadline fixed on the wall clock at the run's start (a resume keeps
    the one it stored), and ``deadline`` the seconds left to it: the run ends there."""
    if options.engine != "auto":
        return options
    import dataclasses
    import time

    now = time.time() if now is None else now
    if options.deadline_at is None:
        if options.deadline is None:
            raise InputError("--engine auto needs --deadline (e.g. --deadline 2h or 07:00)")
        return dataclasses.replace(options, deadline_at=now + options.deadline)
    left = options.deadline_at - now
    # Past it (a late resume), the run has no deadline left to keep: everything goes live.
    return dataclasses.replace(options, deadline=left if left > 0 else None)


def seconds_left(options: RunOptions) -> float | None:
    """The run's deadline in seconds from now: an auto run's, read off the wall clock just
    before the calls start, so that setting up is not added to it."""
    if options.engine != "auto" or options.deadline_at is None or options.deadline is None:
        return options.deadline
    import time

    return max(0.001, options.deadline_at - time.time())


def worker_plan(options: RunOptions, environ: Mapping[str, str] = os.environ) -> WorkerPlan:
    """What each Ray worker builds; the API key is not in it (see ``start_ray``)."""
    from fanwise.cluster import WorkerPlan
    from fanwise.cluster.models import OfflineModels, OpenAIModels

    if provider(options, environ) == "offline":
        settings = OfflineSettings(options.seed, options.offline_latency, options.offline_fail_rate)
        models: Any = OfflineModels(settings)
    else:
        models = OpenAIModels(options.base_url, options.api, options.transport)
    budget = options.retry_budget
    return WorkerPlan(
        models,
        endpoints=options.endpoints,
        concurrency=options.concurrency,
        timeout=options.timeout,
        retry=RetryPolicy(retries=options.retries, max_wait=options.max_wait),
        retry_budget=None if budget is None else -(-budget // options.workers),
        seed=options.seed,
    )


def shared_limits(options: RunOptions, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The limiters the workers share: one for the run, or one per endpoint."""
    from fanwise.cluster.worker import RUN_LIMITER, endpoint_limiter

    # The resolved provider, not the environment: this goes to Ray pickled, so no key in it.
    build = partial(
        get_limiter,
        provider(options, environ),
        rpm=options.rpm,
        tpm=options.tpm,
        adapt=options.adapt,
    )
    names = [endpoint_limiter(n) for n in range(len(options.endpoints))] or [RUN_LIMITER]
    return dict.fromkeys(names, build)


def start_ray(options: RunOptions, environ: Mapping[str, str] = os.environ) -> None:
    """Join ``--ray-address``, or start a local Ray, unless this process already has.

    A local Ray is sized to the run: one CPU per process it needs (the limiter and each
    worker), so Ray prestarts those processes while it starts, and no more (by default it
    prestarts one per core). Its processes are this process's children and inherit its
    environment, the API key included: a job ``runtime_env`` would only make Ray boot fresh
    processes for the job instead of using the prestarted ones, 2 s more before the first call
    (docs/scaling.md). Joining a cluster, the workers get the key through the job's
    environment. Never through a pickled value.

    At exit this process shuts Ray down (stops the local one, leaves a cluster) itself: Ray's
    own exit hook first sleeps half a second for worker logs, and none come here
    (``log_to_driver=False``).
    """
    from fanwise.cluster import RayMissing, import_ray

    try:
        ray = import_ray()
    except RayMissing as exc:
        raise InputError(str(exc)) from None
    if ray.is_initialized():
        return
    key = environ.get("OPENAI_API_KEY")
    local = not options.ray_address
    inherited = local and key == os.environ.get("OPENAI_API_KEY")
    try:
        ray.init(
            address="local" if local else options.ray_address,  # `auto`: a `ray start` cluster
            num_cpus=options.workers + 1 if local else None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": {"OPENAI_API_KEY": key}} if key and not inherited else None,
        )
    except ConnectionError as exc:
        raise InputError(f"--ray-address {options.ray_address}: cannot connect: {exc}") from None
    atexit.register(ray.shutdown)


__all__ = [
    "build_engine",
    "build_limiter",
    "build_model",
    "build_router",
    "check_engine",
    "model_settings",
    "seconds_left",
    "shared_limits",
    "start_ray",
    "with_deadline",
    "worker_plan",
]
