"""``--engine ray``: the fan-out sharded over Ray actors, under one shared budget.

``RayEngine`` is an ``Engine`` whose ``run`` deals the calls out, round robin, to ``workers``
async actors, each running fanwise's own ``Engine`` (``fanwise.cluster.worker``). Their limits
are shared through one named actor (``fanwise.cluster.limits``). Every outcome streams back to
the driver the moment it settles, and is recorded there (the journal), emitted and handed on, as
in a one-process run, so a crash of the driver resumes like any run.

A worker that dies (its node lost, ``ray.kill``) takes with it only the calls it had in flight:
its calls without an outcome are dealt to a fresh actor, up to ``restarts`` times, and the
permits it held are handed back to the shared limits. ``complete`` (a workflow's synthesis)
runs on the driver. Ray must already be initialised (``ray.init``): the caller owns the cluster.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fanwise.cluster.limits import LimiterFactory, SharedLimits
from fanwise.cluster.worker import Worker, WorkerPlan
from fanwise.engine import Call, CallOutcome, Engine
from fanwise.events import CallSettled
from fanwise.limits import Unlimited
from fanwise.models.base import Completion, Model
from fanwise.outcome import (
    CallTimeout,
    Cancelled,
    ErrorKind,
    Fulfilled,
    NetworkError,
    Rejected,
    outcome_from_dict,
)

OnOutcome = Callable[[int, Call, CallOutcome], None]
WORKER_PREFIX = "fanwise-worker-"
LIMITS_PREFIX = "fanwise-limits-"


class RayMissing(ImportError):
    """``--engine ray`` without Ray installed."""


def import_ray() -> Any:
    """The ``ray`` module, or an error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise RayMissing(
            "--engine ray needs Ray: pip install 'fanwise[ray]' (or pip install ray)"
        ) from None
    return ray


@dataclass(slots=True)
class _Run:
    on_outcome: OnOutcome | None
    keep: bool
    fail_fast: bool
    calls: dict[int, Call] = field(default_factory=dict)  # not settled yet
    results: dict[int, CallOutcome] = field(default_factory=dict)


class _Abort(Exception):
    """Fail-fast: the first rejection stops the run."""

    def __init__(self, outcome: Rejected) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


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
        super().__init__(model, **options)
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.plan = plan
        self.limits = dict(limits)
        self._unlimited = frozenset(
            name for name, build in self.limits.items() if isinstance(build(), Unlimited)
        )
        self.workers = workers
        self.restarts = restarts
        self.actor_options = dict(actor_options or {"num_cpus": 1})
        self.tag = ""
        """This run's tag; its actors are ``fanwise-worker-TAG-N-K`` and ``fanwise-limits-TAG``."""

    async def run(
        self,
        calls: Iterable[Call],
        *,
        deadline: float | None = None,
        fail_fast: bool = False,
        on_outcome: OnOutcome | None = None,
        keep: bool = True,
    ) -> list[CallOutcome]:
        """Run every call on the workers; outcomes come back in input order, as ``Engine.run``."""
        ray = import_ray()
        run = _Run(on_outcome, keep, fail_fast)
        for index, call in enumerate(calls):
            cached = self.store.lookup(call) if self.store is not None else None
            if cached is not None:
                self._record(run, index, call, Fulfilled(cached.value, 0.0, self.now(), (), True))
                continue
            try:
                if self.admit is not None:
                    self.admit(call)
            except Exception as exc:
                self._record(run, index, call, Rejected(exc, 0.0, self.now()))
                continue
            run.calls[index] = call
        if not run.calls:
            return self._results(run)
        self.tag = uuid.uuid4().hex[:10]
        limits = (
            ray.remote(SharedLimits)
            .options(name=f"{LIMITS_PREFIX}{self.tag}", num_cpus=0)
            .remote(self.limits)
        )
        shards: list[list[tuple[int, Call]]] = [[] for _ in range(self.workers)]
        for n, item in enumerate(run.calls.items()):
            shards[n % self.workers].append(item)
        scope = asyncio.timeout(deadline)
        try:
            async with scope:
                await self._deal(ray, run, limits, shards)
        except TimeoutError:
            if not scope.expired():
                raise
            self._settle_rest(run, CallTimeout(f"the deadline ({deadline:g}s) passed"))
        except _Abort as abort:
            reason = f"not finished: fail-fast after {abort.outcome.message}"
            self._settle_rest(run, Cancelled(reason))
        finally:
            ray.kill(limits)
        return self._results(run)

    async def _deal(
        self, ray: Any, run: _Run, limits: Any, shards: list[list[tuple[int, Call]]]
    ) -> None:
        """Drive every shard at once; the first error of any (a fail-fast abort) ends them all."""
        try:
            async with asyncio.TaskGroup() as group:
                for number, shard in enumerate(shards):
                    if shard:
                        group.create_task(self._drive(ray, run, limits, number, shard))
        except ExceptionGroup as errors:
            raise errors.exceptions[0] from None  # the others were cancelled because of it

    async def _drive(
        self, ray: Any, run: _Run, limits: Any, number: int, shard: list[tuple[int, Call]]
    ) -> None:
        """Feed one shard to a worker, and to a fresh one each time a worker dies."""
        actor_class = ray.remote(Worker)
        died: BaseException | None = None
        for life in range(self.restarts + 1):
            left = [(index, call) for index, call in shard if index in run.calls]
            if not left:
                return
            name = f"{WORKER_PREFIX}{self.tag}-{number}-{life}"
            actor = actor_class.options(name=name, **self.actor_options).remote(
                self.plan, limits, name, self._unlimited
            )
            origin = time.time() - self.now()
            try:
                stream = actor.run.options(num_returns="streaming").remote(left, origin)
                async for ref in stream:
                    self._receive(run, await ref)
                await actor.close.remote()
            except ray.exceptions.RayTaskError as exc:  # our code raised: a bug, not a death
                raise exc.as_instanceof_cause() from None
            except ray.exceptions.RayActorError as exc:
                died = exc
            else:
                return
            finally:
                await limits.release_worker.remote(name)
                ray.kill(actor)
        message = f"worker {number} died {self.restarts + 1} times; last: {str(died)[:200]}"
        for index, _ in shard:
            if index in run.calls:
                self._record(run, index, run.calls[index], Rejected(NetworkError(message)))

    def _receive(self, run: _Run, item: tuple[str, Any, Any]) -> None:
        kind, what, data = item
        if kind == "event":
            self.emit(what)
            return
        call = run.calls.get(what)
        if call is None:  # settled already (a worker that died had sent it)
            return
        outcome = outcome_from_dict(data, Completion.from_dict)
        self._record(run, what, call, outcome)
        if (
            run.fail_fast
            and isinstance(outcome, Rejected)
            and outcome.kind is not ErrorKind.CANCELLED
        ):
            raise _Abort(outcome)

    def _record(self, run: _Run, index: int, call: Call, outcome: CallOutcome) -> None:
        run.calls.pop(index, None)
        if self.store is not None:
            self.store.record(index, call, outcome)
        self.emit(CallSettled(index, call.key, call.label, outcome, self.now()))
        if run.on_outcome is not None:
            run.on_outcome(index, call, outcome)
        if run.keep:
            run.results[index] = outcome

    def _settle_rest(self, run: _Run, error: Exception) -> None:
        for index, call in list(run.calls.items()):
            self._record(run, index, call, Rejected(error, 0.0, self.now()))

    @staticmethod
    def _results(run: _Run) -> list[CallOutcome]:
        return [run.results[i] for i in sorted(run.results)]


__all__ = ["LIMITS_PREFIX", "WORKER_PREFIX", "RayEngine", "RayMissing", "import_ray"]
