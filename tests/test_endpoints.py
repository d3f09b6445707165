"""EndpointPool: calls spread over several simulators, each under its own limits."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from fanwise import Call, Engine, Request, RetryPolicy
from fanwise.endpoints import Endpoint, EndpointPool, parse_endpoints
from fanwise.limits import AdaptiveConcurrency, Bucket, Limits, Unlimited
from fanwise.models.openai import OpenAIModel
from fanwise.retry import NoWait
from fanwise.simulator import Latency, Simulator
from tests.conftest import StartSimulator
from tests.scripted import ScriptedModel

Pool = Callable[..., EndpointPool]


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    """Build pools of OpenAI models on the given URLs; all closed at teardown."""
    made: list[EndpointPool] = []

    def build(urls: Sequence[str], limiters: Sequence[object] | None = None) -> EndpointPool:
        endpoints = [
            Endpoint(
                url,
                OpenAIModel(api_key="t", base_url=url),
                limiters[i] if limiters else Unlimited(),  # type: ignore[arg-type]
            )
            for i, url in enumerate(urls)
        ]
        made.append(EndpointPool(endpoints))
        return made[-1]

    yield build
    for opened in made:
        await opened.aclose()


def asks(count: int) -> list[Call]:
    return [Call(Request.text(f"question {i}", model="gpt-5-mini")) for i in range(count)]


def engine(pool: EndpointPool, **options: object) -> Engine:
    return Engine(pool, limiter=pool, sleep=NoWait(), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("concurrency", [1, 6])
async def test_calls_are_spread_evenly_over_equal_endpoints(concurrency: int) -> None:
    """Thirty calls over three equal endpoints: ten each, and never more than a third in flight.

    The endpoints are in-process models that all answer after one turn of the event loop, so
    the run is the same every time, whatever the load on the machine (over HTTP, which endpoint
    answers first is up to the scheduler, and so is the exact split). One at a time, every
    endpoint is idle at each pick, so the split comes from ties going round the ring.
    """
    models = [ScriptedModel() for _ in range(3)]
    spread = EndpointPool([Endpoint(f"http://e{i}", m, Unlimited()) for i, m in enumerate(models)])
    outcomes = await engine(spread, concurrency=concurrency).run(asks(30))
    assert all(o.ok for o in outcomes)
    assert [len(m.history) for m in models] == [10, 10, 10]
    assert [m.peak for m in models] == [max(1, concurrency // 3)] * 3


async def test_each_endpoint_is_paced_by_its_own_limits(
    start_simulator: StartSimulator, pool: Pool
) -> None:
    """An endpoint held to 60 rpm takes one call of ten; the unlimited one takes the rest."""
    slow, free = await start_simulator(), await start_simulator()
    limited = Limits(Bucket.rpm(60))
    spread = pool([slow.base_url, free.base_url], [limited, Unlimited()])
    outcomes = await engine(spread, concurrency=10).run(asks(10))
    assert all(o.ok for o in outcomes)
    assert slow.stats().requests <= 2
    assert slow.stats().requests + free.stats().requests == 10


async def test_a_slow_endpoint_gets_fewer_calls(
    start_simulator: StartSimulator, pool: Pool
) -> None:
    """Join the shortest queue: the endpoint that answers ten times slower gets fewer calls."""
    slow = await start_simulator(latency=Latency.fixed(0.1))
    fast = await start_simulator(latency=Latency.fixed(0.01))
    spread = pool([slow.base_url, fast.base_url])
    await engine(spread, concurrency=2).run(asks(24))
    assert slow.stats().requests < fast.stats().requests / 2


async def test_a_dead_endpoint_is_retried_elsewhere_then_left_to_rest(
    simulator: Simulator, pool: Pool
) -> None:
    """Calls to a refused port fail over to the live endpoint; after three failures it rests."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    spread = pool([dead, simulator.base_url])
    outcomes = await engine(spread, concurrency=1, retry=RetryPolicy(retries=3)).run(asks(12))
    assert all(o.ok for o in outcomes)
    assert spread.endpoints[0].sent == 3
    assert simulator.stats().requests == 12


async def test_attempts_wait_for_the_first_endpoint_with_room(
    start_simulator: StartSimulator, pool: Pool
) -> None:
    """With one slot per endpoint and eight calls at once, each server sees one call at a time."""
    sims = [await start_simulator(latency=Latency.fixed(0.02)) for _ in range(2)]
    one_at_a_time = [Limits(AdaptiveConcurrency(1, maximum=1)) for _ in sims]
    spread = pool([s.base_url for s in sims], one_at_a_time)
    outcomes = await engine(spread, concurrency=8).run(asks(8))
    assert all(o.ok for o in outcomes)
    assert [s.stats().peak_in_flight for s in sims] == [1, 1]
    # Both share the work; the exact split follows which server answers first (4/4 when the
    # machine is quiet), so a busy machine may move a call or two.
    requests = [s.stats().requests for s in sims]
    assert sum(requests) == 8 and min(requests) >= 2, requests


async def test_limits_say_when_they_will_be_ready() -> None:
    """Limits.ready_in: 0 with room, the bucket's refill time without, and nothing is taken."""
    now = [0.0]
    limits = Limits(Bucket.rpm(60), clock=lambda: now[0])
    assert limits.ready_in(10) == 0.0
    assert limits.ready_in(10) == 0.0  # asking took nothing
    async with limits.permit(10):
        pass
    assert limits.ready_in(10) == pytest.approx(1.0)
    now[0] = 0.5
    assert limits.ready_in(10) == pytest.approx(0.5)


def test_endpoint_lists_are_parsed_and_checked() -> None:
    """URL1,URL2 gives two URLs; a bare host or an empty list is refused with an example."""
    assert parse_endpoints("http://a:1/v1, http://b:2/v1") == ("http://a:1/v1", "http://b:2/v1")
    with pytest.raises(ValueError, match="http"):
        parse_endpoints("a:1/v1")
    with pytest.raises(ValueError, match="URL1,URL2"):
        parse_endpoints(" , ")
