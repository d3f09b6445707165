"""The fault matrix for Anthropic: every fault, once and always, over the simulator's Messages API.

Both transports run it: fanwise's aiohttp client and the official ``anthropic`` SDK. The same
rows as OpenAI's (tests/test_fault_matrix.py), where Anthropic's own are: a 529
``overloaded_error`` is a retryable server error, a spend limit is a final auth error. The
simulator's Anthropic face sends ``retry-after`` in whole seconds only, as Anthropic does, so a
scripted wait of 0.05 s is asked for, and honoured, as 1 s (``NoWait`` records it; nothing
sleeps).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from fanwise import Call, Engine, Fulfilled, Rejected, Request, RetryPolicy
from fanwise.models.anthropic import AnthropicModel
from fanwise.models.anthropic_sdk import AnthropicSdkModel
from fanwise.models.base import Endpoint
from fanwise.retry import NoWait
from fanwise.simulator import Simulator
from tests.conftest import StartSimulator
from tests.test_fault_matrix import (
    HANG_TIMEOUT,
    MATRIX,
    POLICY,
    PROMPT,
    RETRY_AFTER,
    TIMEOUT,
    Row,
    seen,
)

ANTHROPIC_MATRIX = MATRIX
MESSAGES = Endpoint.MESSAGES
WAIT = float(math.ceil(RETRY_AFTER))  # the whole-second retry-after Anthropic's face sends


TRANSPORTS = ["aiohttp", "sdk"]


def claude(sim: Simulator, transport: str) -> Any:
    """The Anthropic model over ``transport``: fanwise's aiohttp client or the official SDK."""
    if transport == "sdk":
        return AnthropicSdkModel(api_key="test", base_url=sim.url)
    return AnthropicModel(api_key="test", base_url=sim.url)


def engine_for(sim: Simulator, row: Row, sleep: NoWait, transport: str) -> tuple[Engine, Any]:
    model = claude(sim, transport)
    timeout = HANG_TIMEOUT if row.fault == "hang" else TIMEOUT
    return Engine(model, retry=POLICY, timeout=timeout, sleep=sleep, seed=3), model


def claude_call() -> Call:
    return Call(Request.text(PROMPT, "claude-sonnet-4-5", endpoint=Endpoint.MESSAGES))


def assert_waits(row: Row, waits: list[float]) -> None:
    """No wait before the first attempt; then retry-after exactly, or jittered backoff."""
    assert waits[0] == 0.0
    for number, waited in enumerate(waits[1:], start=1):
        if row.retry_after:
            assert waited == WAIT, "retry-after must be honoured exactly"
        else:
            assert 0.0 <= waited <= POLICY.backoff_cap(number), (number, waited)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("row", ANTHROPIC_MATRIX, ids=lambda r: r.fault)
async def test_a_fault_once_then_success(simulator: Simulator, row: Row, transport: str) -> None:
    """One fault, then an answer: retryable faults end fulfilled at attempt 2, final ones at 1."""
    simulator.script(PROMPT, [row.fault, "ok"], retry_after=RETRY_AFTER)
    sleep = NoWait()
    engine, model = engine_for(simulator, row, sleep, transport)
    [outcome] = await engine.run([claude_call()])
    await model.aclose()

    first = outcome.attempts[0]
    assert first.error is not None and first.error["kind"] == row.kind.value, first.error
    if row.retried:
        assert isinstance(outcome, Fulfilled), outcome
        assert len(outcome.attempts) == 2 and outcome.attempts[1].ok
        assert outcome.value.endpoint is Endpoint.MESSAGES
    else:
        assert isinstance(outcome, Rejected) and outcome.kind is row.kind
        assert len(outcome.attempts) == 1
    assert await seen(simulator, len(outcome.attempts)) == len(outcome.attempts)
    assert_waits(row, [a.waited for a in outcome.attempts])


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("row", ANTHROPIC_MATRIX, ids=lambda r: r.fault)
async def test_a_fault_that_never_clears(simulator: Simulator, row: Row, transport: str) -> None:
    """A fault on every try: retryable ones give up after retries + 1 attempts, final ones at 1."""
    simulator.script(PROMPT, [row.fault] * POLICY.max_attempts, retry_after=RETRY_AFTER)
    sleep = NoWait()
    engine, model = engine_for(simulator, row, sleep, transport)
    [outcome] = await engine.run([claude_call()])
    await model.aclose()

    assert isinstance(outcome, Rejected) and outcome.kind is row.kind
    expected = POLICY.max_attempts if row.retried else 1
    assert len(outcome.attempts) == expected == await seen(simulator, expected)
    assert all(a.error is not None and a.error["kind"] == row.kind.value for a in outcome.attempts)
    assert_waits(row, [a.waited for a in outcome.attempts])


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_storm_of_faults_loses_nothing(
    start_simulator: StartSimulator, stream: bool, transport: str
) -> None:
    """With a third of requests failing (529s among them), every call is fulfilled."""
    faults = {"529": 0.15, "500": 0.05, "429": 0.05, "drop": 0.04, "garbage": 0.03}
    sim = await start_simulator(faults=faults, retry_after=0.01, seed=5)
    model = claude(sim, transport)
    engine = Engine(
        model, concurrency=16, timeout=5.0, retry=RetryPolicy(retries=10), sleep=NoWait(), seed=1
    )
    calls = [
        Call(Request.text(f"Question {i} about Kyoto", "claude-haiku-4-5", endpoint=MESSAGES))
        for i in range(80)
    ]
    if stream:
        deltas: list[str] = []
        outcomes = list(
            await asyncio.gather(*(engine.complete(c, on_delta=deltas.append) for c in calls))
        )
        assert deltas
    else:
        outcomes = await engine.run(calls)
    await model.aclose()
    assert all(isinstance(o, Fulfilled) for o in outcomes), [o for o in outcomes if not o.ok]
    assert sum(len(o.attempts) for o in outcomes) == sim.stats().requests > len(outcomes)
