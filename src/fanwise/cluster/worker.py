"""A worker: fanwise's own ``Engine`` in a Ray actor, streaming each outcome back as it settles.

The worker builds its model (one per endpoint) from a picklable ``WorkerPlan``, and an engine
whose limiter leases its permits from the shared limits actor (``LeasedLimiter``). Each permit
names its endpoint, chosen by the actor from the load and limits of every worker together, and
the attempt goes there (``Routed``). Only when nothing is limited is nothing shared: each worker
then spreads its calls over the endpoints by its own load (``EndpointPool``), with no round trip.
``run`` is a streaming generator: the driver receives every call's start and retries as events,
and every outcome (as its JSON form) the moment it settles, so a worker that dies loses only
the calls it had in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fanwise.cluster.limits import LeasedLimiter, leased_member
from fanwise.endpoints import Endpoint, EndpointPool
from fanwise.engine import Call, CallOutcome, Engine
from fanwise.events import CallRetrying, CallStarted, Event
from fanwise.limits import Limiter, Unlimited
from fanwise.models.base import Completion, DeltaSink, Model, Request
from fanwise.retry import RetryBudget, RetryPolicy

ModelFactory = Callable[[str | None], Model]
"""Builds a model for an endpoint URL (``None``: the run's one endpoint), in the worker."""
Item = tuple[str, Any, Any]
"""What a worker streams: ``("event", event, None)`` or ``("outcome", index, outcome_dict)``."""

RUN_LIMITER = "run"


def endpoint_limiter(number: int) -> str:
    """The shared limiter's name for endpoint ``number``."""
    return f"endpoint-{number}"


@dataclass(frozen=True)
class WorkerPlan:
    """What every worker builds: its model(s) and its engine's settings. All picklable."""

    model: ModelFactory
    endpoints: tuple[str, ...] = ()
    concurrency: int = 8
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retry_budget: int | None = None
    seed: int | None = None


class Routed(Model):
    """The endpoints' models as one: each attempt goes to the endpoint its leased permit names."""

    def __init__(self, models: Sequence[Model]) -> None:
        self.models = list(models)

    @property
    def name(self) -> str:
        return self.models[0].name if len(self.models) == 1 else f"{len(self.models)} endpoints"

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        return await self.models[leased_member()].complete(request, on_delta=on_delta)

    async def aclose(self) -> None:
        for model in self.models:
            await model.aclose()


class Worker:
    """One worker of a run; made a Ray actor by ``fanwise.cluster.dispatch``."""

    def __init__(
        self, plan: WorkerPlan, limits: Any, name: str, unlimited: frozenset[str] = frozenset()
    ) -> None:
        # Nothing here can fail: an error in the constructor would look like a dead worker and
        # be retried; the model is built by the first ``run``, where an error is a task error.
        self.plan = plan
        self.limits = limits
        self.name = name
        self.unlimited = unlimited  # shared limiters that limit nothing: no round trip for them
        self.built: tuple[Model, Limiter] | None = None

    def _build(self) -> tuple[Model, Limiter]:
        plan = self.plan
        names = [endpoint_limiter(n) for n in range(len(plan.endpoints))] or [RUN_LIMITER]
        models = [plan.model(url) for url in plan.endpoints] or [plan.model(None)]
        if not set(names) <= self.unlimited:
            return Routed(models), LeasedLimiter(self.limits, self.name)
        if len(models) == 1:
            return models[0], Unlimited()
        pool = EndpointPool(
            [
                Endpoint(url, model, Unlimited())
                for url, model in zip(plan.endpoints, models, strict=True)
            ]
        )
        return pool, pool

    async def run(self, shard: Sequence[tuple[int, Call]], origin: float) -> AsyncIterator[Item]:
        """Run ``shard`` (global index, call); yield events and outcomes as they happen.

        ``origin`` is the driver's time zero on the wall clock, so every time a worker reports
        lies on the driver's own axis.
        """
        if self.built is None:
            self.built = self._build()
        model, limiter = self.built
        queue: asyncio.Queue[Item | None] = asyncio.Queue()
        indices = [index for index, _ in shard]

        def observe(event: Event) -> None:
            if isinstance(event, CallStarted | CallRetrying):
                queue.put_nowait(("event", replace(event, index=indices[event.index]), None))

        def settled(local: int, call: Call, outcome: CallOutcome) -> None:
            queue.put_nowait(("outcome", indices[local], outcome.to_dict()))

        engine = Engine(
            model,
            concurrency=self.plan.concurrency,
            timeout=self.plan.timeout,
            retry=self.plan.retry,
            retry_budget=RetryBudget(self.plan.retry_budget),
            limiter=limiter,
            observer=observe,
            clock=time.time,
            seed=self.plan.seed,
        )
        engine.origin = origin

        async def work() -> None:
            try:
                await engine.run((call for _, call in shard), on_outcome=settled, keep=False)
            finally:
                queue.put_nowait(None)

        # A TaskGroup must not span a yield; the task is awaited or cancelled before leaving.
        task = asyncio.create_task(work())
        try:
            while (item := await queue.get()) is not None:
                yield item
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def close(self) -> None:
        """Hand back unused permits, send the last endings, close the models."""
        if self.built is None:
            return
        model, limiter = self.built
        if isinstance(limiter, LeasedLimiter):
            await limiter.aclose()
        await model.aclose()


__all__ = [
    "RUN_LIMITER",
    "Item",
    "ModelFactory",
    "Routed",
    "Worker",
    "WorkerPlan",
    "endpoint_limiter",
]
