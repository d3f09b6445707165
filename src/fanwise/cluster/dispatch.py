"""The Ray dispatch: calls dealt out, round robin, to Ray actors, each a live engine.

Each of ``workers`` async actors runs fanwise's own ``Engine`` on its share
(``fanwise.cluster.worker``); their limits are shared through one named actor
(``fanwise.cluster.limits``). Every event and outcome streams back to the driver the moment it
happens, and the driver's engine journals, emits and hands it on, as in a one-process run, so a
crash of the driver resumes like any run.

A worker that dies (its node lost, ``ray.kill``) takes with it only the calls it had in flight:
its calls without an outcome are dealt to a fresh actor, up to ``restarts`` times, and the
permits it held are handed back to the shared limits. Ray must already be initialised
(``ray.init``): the caller owns the cluster.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from fanwise.cluster.limits import LimiterFactory, SharedLimits
from fanwise.cluster.worker import Worker, WorkerPlan
from fanwise.dispatch import Dispatch, Run, Ticket
from fanwise.limits import Unlimited
from fanwise.models.base import Completion
from fanwise.outcome import FanwiseError, NetworkError, outcome_from_dict

WORKER_PREFIX = "fanwise-worker-"
LIMITS_PREFIX = "fanwise-limits-"


class RayMissing(FanwiseError, ImportError):
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


class RayDispatch(Dispatch):
    """Sends calls through ``workers`` Ray actors that share ``limits``."""

    def __init__(
        self,
        *,
        plan: WorkerPlan,
        limits: Mapping[str, LimiterFactory],
        workers: int = 2,
        restarts: int = 3,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
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
        """The last run's tag; its actors are ``fanwise-worker-TAG-N-K``, ``fanwise-limits-TAG``."""

    async def send(self, tickets: Iterable[Ticket], run: Run) -> None:
        ray = import_ray()
        open_ = {ticket.index: ticket for ticket in tickets}
        if not open_:
            return
        self.tag = uuid.uuid4().hex[:10]
        limits = (
            ray.remote(SharedLimits)
            .options(name=f"{LIMITS_PREFIX}{self.tag}", num_cpus=0)
            .remote(self.limits)
        )
        shards: list[list[Ticket]] = [[] for _ in range(self.workers)]
        for n, ticket in enumerate(open_.values()):
            shards[n % self.workers].append(ticket)
        try:
            async with asyncio.TaskGroup() as group:
                for number, shard in enumerate(shards):
                    if shard:
                        group.create_task(self._drive(ray, run, open_, limits, number, shard))
        except ExceptionGroup as errors:
            raise errors.exceptions[0] from None  # the others were cancelled because of it
        finally:
            ray.kill(limits)

    async def _drive(
        self,
        ray: Any,
        run: Run,
        open_: dict[int, Ticket],
        limits: Any,
        number: int,
        shard: list[Ticket],
    ) -> None:
        """Feed one shard to a worker, and to a fresh one each time a worker dies."""
        actor_class = ray.remote(Worker)
        died: BaseException | None = None
        for life in range(self.restarts + 1):
            left = [(t.index, t.call) for t in shard if t.index in open_]
            if not left:
                return
            name = f"{WORKER_PREFIX}{self.tag}-{number}-{life}"
            actor = actor_class.options(name=name, **self.actor_options).remote(
                self.plan, limits, name, self._unlimited
            )
            origin = time.time() - run.now()
            try:
                stream = actor.run.options(num_returns="streaming").remote(left, origin)
                async for ref in stream:
                    self._receive(run, open_, await ref)
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
        for ticket in shard:
            if open_.pop(ticket.index, None) is not None:
                run.settled(ticket, ticket.outcome(NetworkError(message), run.now()))

    @staticmethod
    def _receive(run: Run, open_: dict[int, Ticket], item: tuple[str, Any, Any]) -> None:
        kind, what, data = item
        if kind == "event":
            started = open_.get(what.index)
            if started is not None and started.first_start is None:
                started.first_start = what.at  # running: the deadline says so if it cuts it
            run.emit(what)
            return
        ticket = open_.pop(what, None)
        if ticket is not None:  # else settled already (a worker that died had sent it)
            run.settled(ticket, outcome_from_dict(data, Completion.from_dict))


__all__ = ["LIMITS_PREFIX", "WORKER_PREFIX", "RayDispatch", "RayMissing", "import_ray"]
