"""Several OpenAI-compatible endpoints used as one: a fleet of vLLM replicas, or several keys.

``EndpointPool`` is a ``Model`` and a ``Limiter`` at once, handed to the engine as both. Before
each attempt the engine asks it for a permit, and the pool sends the attempt where it can start
now: among the endpoints whose own limits let an attempt of that size start at once, the one
with the fewest calls in flight (ties go round the ring). When none can, the attempt waits for
the first that can (its limits' own wait, or an attempt finishing), instead of queueing behind
an endpoint chosen too early. The request then goes to the endpoint its permit picked: a
``ContextVar`` carries the pick from ``permit`` to ``complete``, which both run in the
attempt's own task. So each endpoint is paced by its own ``--rpm``/``--tpm`` and its own
``x-ratelimit-*`` headers, a retry may land elsewhere, and a slow or tightly limited endpoint
simply takes fewer calls.

A limiter that cannot say when it will be ready (one without ``ready_in``) counts as ready.
An endpoint that keeps failing (``failures_to_trip`` network, timeout or server errors in a
row) is left out for ``cooldown`` seconds, unless every endpoint is; a 429 is not a failure
here: its limiter deals with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fanwise.limits import Clock, Limiter, Permit
from fanwise.models.base import Completion, DeltaSink, Model, Request
from fanwise.outcome import ErrorKind, classify

_TRIPPING = frozenset({ErrorKind.NETWORK, ErrorKind.TIMEOUT, ErrorKind.SERVER})
_chosen: contextvars.ContextVar[int] = contextvars.ContextVar("fanwise_endpoint")


def _ready_in(limiter: Limiter, estimated_tokens: int) -> float:
    ready_in = getattr(limiter, "ready_in", None)
    return 0.0 if ready_in is None else float(ready_in(estimated_tokens))


def parse_endpoints(text: str) -> tuple[str, ...]:
    """``URL1,URL2,...`` as a tuple of URLs; ``ValueError`` names the bad one."""
    urls = tuple(part.strip() for part in text.split(",") if part.strip())
    if not urls:
        raise ValueError(
            "expected URL1,URL2,... e.g. http://10.0.0.1:8000/v1,http://10.0.0.2:8000/v1"
        )
    for url in urls:
        check_endpoint(url)
    return urls


def check_endpoint(url: str) -> str:
    """``url`` if it can be an endpoint's base URL, else ``ValueError`` saying why."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(
            f"endpoint {url!r} must be an http:// or https:// URL, e.g. http://10.0.0.1:8000/v1"
        )
    return url


@dataclass(eq=False, slots=True)
class Endpoint:
    """One endpoint in a pool: its model, its limiter and what the pool knows of it."""

    url: str
    model: Model
    limiter: Limiter
    load: int = 0  # permits handed out and not returned: calls waiting or in flight
    sent: int = 0
    failures: int = 0  # in a row
    resting_until: float = field(default=-1.0)


class EndpointPool(Model):
    """Spread calls over endpoints, each under its own limits. Pass it as model and limiter."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        failures_to_trip: int = 3,
        cooldown: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if not endpoints:
            raise ValueError("an endpoint pool needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.failures_to_trip = failures_to_trip
        self.cooldown = cooldown
        self.clock = clock
        self._turn = 0
        self._released = asyncio.Event()

    @property
    def name(self) -> str:
        return f"pool of {len(self.endpoints)}"

    def pick(self, estimated_tokens: int = 0) -> tuple[int | None, float]:
        """The endpoint to send to now, if any, and else how long until one may be ready."""
        now = self.clock()
        count = len(self.endpoints)
        awake = [i for i, e in enumerate(self.endpoints) if e.resting_until <= now]
        order = sorted(
            awake or range(count),
            key=lambda i: (self.endpoints[i].load, (i - self._turn) % count),
        )
        soonest = math.inf
        for index in order:
            wait = _ready_in(self.endpoints[index].limiter, estimated_tokens)
            if wait <= 0:
                self._turn = (index + 1) % count
                return index, 0.0
            soonest = min(soonest, wait)
        return None, soonest

    @asynccontextmanager
    async def permit(self, estimated_tokens: int) -> AsyncIterator[Permit]:
        while True:
            index, wait = self.pick(estimated_tokens)
            if index is not None:
                break
            released = self._released
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if math.isinf(wait) else wait):
                    await released.wait()
        endpoint = self.endpoints[index]
        endpoint.load += 1
        token = _chosen.set(index)
        try:
            async with endpoint.limiter.permit(estimated_tokens) as permit:
                try:
                    yield permit
                except Exception as exc:
                    self.settled(endpoint, exc)
                    raise
                self.settled(endpoint, None)
        finally:
            endpoint.load -= 1
            _chosen.reset(token)
            self._released.set()  # wake the attempts waiting for an endpoint
            self._released = asyncio.Event()

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        """Send to the endpoint this attempt's permit picked (the least loaded, without one)."""
        index = _chosen.get(None)
        if index is None:  # no permit (a caller without the pool as limiter): least loaded
            index = min(range(len(self.endpoints)), key=lambda i: self.endpoints[i].load)
        endpoint = self.endpoints[index]
        endpoint.sent += 1
        return await endpoint.model.complete(request, on_delta=on_delta)

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.model.aclose()

    def settled(self, endpoint: Endpoint, error: BaseException | None) -> None:
        """An attempt on ``endpoint`` ended (``error``: how it failed): count failures in a row,
        and rest an endpoint that keeps failing. Public for a pool whose permits are held
        elsewhere (``fanwise.cluster.limits``)."""
        if error is None:
            endpoint.failures = 0
            return
        if classify(error) not in _TRIPPING:
            return
        endpoint.failures += 1
        if endpoint.failures >= self.failures_to_trip:
            endpoint.resting_until = self.clock() + self.cooldown

    def __repr__(self) -> str:
        loads = ", ".join(f"{e.url} load={e.load} sent={e.sent}" for e in self.endpoints)
        return f"EndpointPool({loads})"


__all__ = ["Endpoint", "EndpointPool", "check_endpoint", "parse_endpoints"]
