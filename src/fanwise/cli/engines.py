"""The engine the flags ask for: live (on one endpoint or a pool), the Batch API, or Ray.

Wiring only: every engine is a library class; this module reads ``RunOptions`` and hands over.
``build_model`` (``RunOptions``) already turned ``--endpoints`` into an ``EndpointPool``; a pool
is then the engine's limiter too, each endpoint under its own ``--rpm``/``--tpm``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from functools import partial
from typing import Any

from fanwise.cli.limit_flags import make_limiter
from fanwise.cli.options import InputError, RunOptions
from fanwise.cli.session import Session
from fanwise.cluster import RayEngine, RayMissing, WorkerPlan, import_ray
from fanwise.cluster.models import OfflineModels, OpenAIModels
from fanwise.cluster.worker import RUN_LIMITER, endpoint_limiter
from fanwise.endpoints import Endpoint, EndpointPool
from fanwise.engine import Engine
from fanwise.events import Observer
from fanwise.models import OfflineSettings, choose_provider
from fanwise.models.base import Model
from fanwise.retry import RetryBudget, RetryPolicy

RAY_ACTOR = {"num_cpus": 0.25, "scheduling_strategy": "SPREAD"}
"""A worker mostly waits on the network: a quarter of a core each, spread over the nodes."""


def build_engine(
    options: RunOptions, model: Model, *, observer: Observer | None, session: Session | None
) -> Engine:
    """The engine for ``options`` over ``model``, recording into ``session`` if any."""
    common: dict[str, Any] = {
        "concurrency": options.concurrency,
        "timeout": options.timeout,
        "retry": RetryPolicy(retries=options.retries),
        "retry_budget": RetryBudget(options.retry_budget),
        "limiter": model if isinstance(model, EndpointPool) else options.build_limiter(),
        "observer": observer,
        "seed": options.seed,
        **(session.engine_options() if session is not None else {}),
    }
    if options.engine == "batch":
        # Imported here: batchapi loads the openai SDK, 0.5 s and 23 MB that every other run of
        # the CLI would pay at startup (docs/benchmarks.md).
        from fanwise.batchapi import BatchClient, BatchEngine, Polling
        from fanwise.models.openai import OpenAIModel

        if not isinstance(model, OpenAIModel):  # RunOptions.build_model sees to it
            raise InputError("--engine batch needs the OpenAI provider")
        return BatchEngine(
            model,
            batches=BatchClient(model.client),
            api=model.api,
            polling=Polling(first=min(1.0, options.batch_poll), most=options.batch_poll),
            ledger=session.ledger() if session else None,
            retry_with=options.retry_with,  # type: ignore[arg-type]  # a click.Choice
            **common,
        )
    if options.engine == "ray":
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


def endpoint_pool(options: RunOptions, environ: Mapping[str, str] = os.environ) -> EndpointPool:
    """``--endpoints``: a model per URL, each under its own limits from the run's flags."""
    provider = choose_provider(options.provider, environ)
    single = dataclasses.replace(options, endpoints=(), quiet=True)
    return EndpointPool(
        [
            Endpoint(
                url,
                dataclasses.replace(single, base_url=url).build_model(environ),
                make_limiter(
                    rpm=options.rpm, tpm=options.tpm, adapt=options.adapt, provider=provider
                ),
            )
            for url in options.endpoints
        ]
    )


def worker_plan(options: RunOptions, environ: Mapping[str, str] = os.environ) -> WorkerPlan:
    """What each Ray worker builds; the API key is not in it (see ``start_ray``)."""
    provider = choose_provider(options.provider, environ)
    if provider == "offline":
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
        retry=RetryPolicy(retries=options.retries),
        retry_budget=None if budget is None else -(-budget // options.workers),
        seed=options.seed,
    )


def shared_limits(options: RunOptions, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The limiters the workers share: one for the run, or one per endpoint."""
    provider = choose_provider(options.provider, environ)
    build = partial(
        make_limiter, rpm=options.rpm, tpm=options.tpm, adapt=options.adapt, provider=provider
    )
    names = [endpoint_limiter(n) for n in range(len(options.endpoints))] or [RUN_LIMITER]
    return dict.fromkeys(names, build)


def start_ray(options: RunOptions, environ: Mapping[str, str] = os.environ) -> None:
    """Join ``--ray-address`` (or start a local Ray), unless this process already has.

    The workers get the API key through the job's environment, never through a pickled value.
    """
    try:
        ray = import_ray()
    except RayMissing as exc:
        raise InputError(str(exc)) from None
    if ray.is_initialized():
        return
    key = environ.get("OPENAI_API_KEY")
    try:
        ray.init(
            address=options.ray_address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": {"OPENAI_API_KEY": key}} if key else None,
        )
    except ConnectionError as exc:
        raise InputError(f"--ray-address {options.ray_address}: cannot connect: {exc}") from None


__all__ = ["build_engine", "endpoint_pool", "shared_limits", "start_ray", "worker_plan"]
