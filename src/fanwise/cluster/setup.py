"""A ``RunConfig`` made into Ray's parts: what each worker builds, the limits they share, and the
Ray instance itself (joined or started here).

The API key is never in what goes to Ray: workers read their provider's key from their own
environment (a local Ray's processes inherit this one's; a joined cluster's get it through the
job's ``runtime_env``), never from a pickled value.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from fanwise.cluster.dispatch import RayMissing, import_ray
from fanwise.cluster.worker import RUN_LIMITER, WorkerPlan, endpoint_limiter
from fanwise.factory import ConfigError, get_limiter, get_model
from fanwise.models.base import Model
from fanwise.models.providers import KEYS
from fanwise.retry import RetryPolicy

if TYPE_CHECKING:
    from fanwise.config.run_config import RunConfig

RAY_ACTOR = {"num_cpus": 0.25, "scheduling_strategy": "SPREAD"}
"""A worker mostly waits on the network: a quarter of a core each, spread over the nodes."""


@dataclass(frozen=True, slots=True)
class ConfigModels:
    """A worker's model for an endpoint URL (``None``: the run's base URL), built by the
    library's one factory from the (key-free) config: every provider, every transport."""

    config: RunConfig

    def __call__(self, url: str | None) -> Model:
        config = self.config
        return get_model(
            config.provider,
            base_url=url or config.base_url,
            api=config.api,  # type: ignore[arg-type]  # checked by RunConfig
            transport=config.transport,  # type: ignore[arg-type]
            offline=config.offline,
            environ=os.environ,
        )


def worker_plan(config: RunConfig) -> WorkerPlan:
    """What each Ray worker builds; the run's retry budget shared out between the workers."""
    budget = config.retry_budget
    return WorkerPlan(
        ConfigModels(config),
        endpoints=config.endpoints,
        concurrency=config.concurrency,
        timeout=config.timeout,
        retry=RetryPolicy(retries=config.retries, max_wait=config.max_wait),
        retry_budget=None if budget is None else -(-budget // config.workers),
        seed=config.seed,
    )


def shared_limits(config: RunConfig) -> dict[str, Any]:
    """The limiters the workers share: one for the run, or one per endpoint. Pickled to Ray:
    built from the resolved provider, never from the environment."""
    build = partial(
        get_limiter, config.provider, rpm=config.rpm, tpm=config.tpm, adapt=config.adapt
    )
    names = [endpoint_limiter(n) for n in range(len(config.endpoints))] or [RUN_LIMITER]
    return dict.fromkeys(names, build)


def start_ray(config: RunConfig, environ: Mapping[str, str] = os.environ) -> None:
    """Join ``config.ray_address``, or start a local Ray, unless this process already has.

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
    try:
        ray = import_ray()
    except RayMissing as exc:
        raise ConfigError("engine", str(exc)) from None
    if ray.is_initialized():
        return
    keys = {name: environ[name] for name in KEYS.get(config.provider, ()) if environ.get(name)}
    local = not config.ray_address
    inherited = local and all(os.environ.get(name) == key for name, key in keys.items())
    try:
        ray.init(
            address="local" if local else config.ray_address,  # `auto`: a `ray start` cluster
            num_cpus=config.workers + 1 if local else None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": keys} if keys and not inherited else None,
        )
    except ConnectionError as exc:
        raise ConfigError("ray_address", f"{config.ray_address}: cannot connect: {exc}") from None
    atexit.register(ray.shutdown)


__all__ = ["RAY_ACTOR", "ConfigModels", "shared_limits", "start_ray", "worker_plan"]
