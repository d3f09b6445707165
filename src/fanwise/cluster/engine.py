"""``--engine ray``: the fan-out sharded over Ray actors, under one shared budget.

``RayEngine`` is an ``Engine`` whose dispatch is ``RayDispatch`` (``fanwise.cluster.dispatch``):
the same run loop, journal, events and outcomes as a one-process run. ``complete`` (a
workflow's synthesis) runs live on the driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fanwise.cluster.dispatch import (
    LIMITS_PREFIX,
    WORKER_PREFIX,
    RayDispatch,
    RayMissing,
    import_ray,
)
from fanwise.cluster.limits import LimiterFactory
from fanwise.cluster.worker import WorkerPlan
from fanwise.engine import Engine
from fanwise.models.base import Model


class RayEngine(Engine):
    """An ``Engine`` whose ``run`` is spread over Ray actors; ``complete`` stays on the driver."""

    def __init__(
        self,
        model: Model,
        *,
        plan: WorkerPlan,
        limits: Mapping[str, LimiterFactory],
        workers: int = 2,
        restarts: int = 3,
        actor_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.fleet = RayDispatch(
            plan=plan,
            limits=limits,
            workers=workers,
            restarts=restarts,
            actor_options=actor_options,
        )
        super().__init__(model, dispatch=self.fleet, **options)

    @property
    def tag(self) -> str:
        """The last run's tag; its actors are ``fanwise-worker-TAG-N-K``, ``fanwise-limits-TAG``."""
        return self.fleet.tag


__all__ = ["LIMITS_PREFIX", "WORKER_PREFIX", "RayEngine", "RayMissing", "import_ray"]
