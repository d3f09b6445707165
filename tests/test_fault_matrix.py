"""The fault matrix: every fault the API can throw, over real HTTP, ends as docs/resilience.md says.

Each fault is scripted on the simulator for one prompt and the call goes through the real SDK
(``OpenAIModel``) and the engine with ``NoWait``, so the recorded waits are the policy's own
and nothing sleeps for real (except the hang, which must outlast the attempt timeout).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fanwise import Call, Engine, ErrorKind, Fulfilled, Rejected, Request, RetryPolicy
from fanwise.models.openai import OpenAIModel
from fanwise.retry import NoWait
from fanwise.simulator import Simulator
from tests.conftest import OnApi, StartSimulator

PROMPT = "What are the top attractions to visit in Kyoto?"
RETRY_AFTER = 0.05  # seconds the scripted 429s and 503s ask for
HANG_TIMEOUT = 0.2  # seconds an attempt may take when the fault is a hang (its fate: timeout)
TIMEOUT = 10.0  # otherwise: the first SDK call in a process alone takes ~0.13 s (lazy imports)
POLICY = RetryPolicy(retries=3, base_delay=0.5, max_delay=30.0)
DOCS = Path(__file__).parent.parent / "docs" / "resilience.md"


@dataclass(frozen=True)
class Row:
    """One fault: the simulator's word for it, the kind it must become, and the policy for it."""

    fault: str
    kind: ErrorKind
    retried: bool
    retry_after: bool = False  # the server says how long to wait, and fanwise waits exactly that


MATRIX = [
    Row("429", ErrorKind.RATE_LIMITED, retried=True, retry_after=True),
    Row("500", ErrorKind.SERVER, retried=True),
    Row("502", ErrorKind.SERVER, retried=True),
    Row("503", ErrorKind.SERVER, retried=True, retry_after=True),
    Row("504", ErrorKind.SERVER, retried=True),
    Row("408", ErrorKind.TIMEOUT, retried=True),
    Row("409", ErrorKind.SERVER, retried=True),
    Row("drop", ErrorKind.NETWORK, retried=True),
    Row("hang", ErrorKind.TIMEOUT, retried=True),
    Row("garbage", ErrorKind.INVALID_RESPONSE, retried=True),
    Row("empty", ErrorKind.INVALID_RESPONSE, retried=True),
    Row("cut", ErrorKind.INVALID_RESPONSE, retried=True),
    Row("400", ErrorKind.BAD_REQUEST, retried=False),
    Row("401", ErrorKind.AUTH, retried=False),
    Row("403", ErrorKind.AUTH, retried=False),
    Row("404", ErrorKind.BAD_REQUEST, retried=False),
    Row("422", ErrorKind.BAD_REQUEST, retried=False),
    Row("529", ErrorKind.SERVER, retried=True),
    Row("spend", ErrorKind.AUTH, retried=False),
]


def engine_for(
    sim: Simulator, api: str, sleep: NoWait, timeout: float = TIMEOUT
) -> tuple[Engine, OpenAIModel]:
    model: Any = OnApi(OpenAIModel(api_key="test", base_url=sim.base_url), api)
    return Engine(model, retry=POLICY, timeout=timeout, sleep=sleep, seed=3), model


async def seen(sim: Simulator, count: int, within: float = 5.0) -> int:
    """The attempts the simulator counted, waiting (up to ``within`` s) until it has ``count``:
    a hang's last attempt can time out at the client before a busy server has read it."""
    give_up = asyncio.get_running_loop().time() + within
    while (got := sim.stats().attempts[PROMPT]) < count:
        if asyncio.get_running_loop().time() > give_up:
            break
        await asyncio.sleep(0.01)
    return got


def timeout_for(row: Row) -> float:
    return HANG_TIMEOUT if row.fault == "hang" else TIMEOUT


def assert_waits_follow_the_policy(row: Row, waits: list[float]) -> None:
    """The first attempt waits for nothing; each retry waits Retry-After or jittered backoff."""
    assert waits[0] == 0.0
    for number, waited in enumerate(waits[1:], start=1):
        if row.retry_after:
            assert waited == RETRY_AFTER, "Retry-After must be honoured exactly"
        else:
            assert 0.0 <= waited <= POLICY.backoff_cap(number), (number, waited)


@pytest.mark.parametrize("api", ["responses", "chat"])
@pytest.mark.parametrize("row", MATRIX, ids=lambda r: r.fault)
async def test_a_fault_once_then_success(simulator: Simulator, row: Row, api: str) -> None:
    """One fault, then an answer: retryable faults end fulfilled at attempt 2, final ones at 1."""
    simulator.script(PROMPT, [row.fault, "ok"], retry_after=RETRY_AFTER)
    sleep = NoWait()
    engine, model = engine_for(simulator, api, sleep, timeout_for(row))
    [outcome] = await engine.run([Call(Request.text(PROMPT))])
    await model.aclose()

    first = outcome.attempts[0]
    assert first.error is not None and first.error["kind"] == row.kind.value
    waits = [a.waited for a in outcome.attempts]
    assert waits[1:] == sleep.waits, "each attempt records the wait that preceded it"
    if row.retried:
        assert isinstance(outcome, Fulfilled), outcome
        assert len(outcome.attempts) == 2 and outcome.attempts[1].ok
    else:
        assert isinstance(outcome, Rejected) and outcome.kind is row.kind
        assert len(outcome.attempts) == 1
    assert await seen(simulator, len(outcome.attempts)) == len(outcome.attempts)
    assert_waits_follow_the_policy(row, waits)


@pytest.mark.parametrize("api", ["responses", "chat"])
@pytest.mark.parametrize("row", MATRIX, ids=lambda r: r.fault)
async def test_a_fault_that_never_clears(simulator: Simulator, row: Row, api: str) -> None:
    """A fault on every try: retryable ones give up after retries + 1 attempts, final ones at 1."""
    simulator.script(PROMPT, [row.fault] * POLICY.max_attempts, retry_after=RETRY_AFTER)
    sleep = NoWait()
    engine, model = engine_for(simulator, api, sleep, timeout_for(row))
    [outcome] = await engine.run([Call(Request.text(PROMPT))])
    await model.aclose()

    assert isinstance(outcome, Rejected) and outcome.kind is row.kind
    expected = POLICY.max_attempts if row.retried else 1
    assert len(outcome.attempts) == expected == await seen(simulator, expected)
    assert all(a.error is not None and a.error["kind"] == row.kind.value for a in outcome.attempts)
    assert [a.number for a in outcome.attempts] == list(range(1, expected + 1))
    starts = [a.started for a in outcome.attempts]
    assert starts == sorted(starts)
    assert_waits_follow_the_policy(row, [a.waited for a in outcome.attempts])


async def test_a_real_context_length_error_is_final(start_simulator: StartSimulator) -> None:
    """A prompt over the context window is a 400 context_length_exceeded: one attempt, no wait."""
    sim = await start_simulator(context_window=200)
    sleep = NoWait()
    engine, model = engine_for(sim, "responses", sleep)
    [outcome] = await engine.run([Call(Request.text("Tell me about Kyoto. " * 200))])
    await model.aclose()
    assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.BAD_REQUEST
    assert outcome.attempts[0].error is not None
    assert outcome.attempts[0].error["code"] == "context_length_exceeded"
    assert len(outcome.attempts) == 1 and sleep.waits == []


async def test_a_run_with_30_percent_transient_failures_loses_nothing(
    start_simulator: StartSimulator,
) -> None:
    """With 30% of requests failing transiently, every call is fulfilled and shows its retries."""
    faults = {"429": 0.1, "500": 0.08, "503": 0.04, "drop": 0.04, "garbage": 0.02, "hang": 0.02}
    sim = await start_simulator(faults=faults, retry_after=0.01, seed=11)
    model = OpenAIModel(api_key="test", base_url=sim.base_url)
    engine = Engine(
        model, concurrency=16, timeout=0.3, retry=RetryPolicy(retries=8), sleep=NoWait(), seed=1
    )
    outcomes = await engine.run(Call(Request.text(f"Question {i} about Kyoto")) for i in range(120))
    await model.aclose()

    assert all(isinstance(o, Fulfilled) for o in outcomes)
    stats = sim.stats()
    failed = stats.requests - len(outcomes)
    assert 0.2 <= failed / stats.requests <= 0.4, stats
    attempts = [a for o in outcomes for a in o.attempts]
    timed_out = [a for a in attempts if a.error is not None and a.error["kind"] == "timeout"]
    # Every request the server saw is an attempt on record. An attempt that timed out on a
    # loaded machine may never have reached the server (its 0.3 s ran out while connecting),
    # so only those may be attempts the server did not count.
    assert stats.requests <= len(attempts) <= stats.requests + len(timed_out)
    retried = [o for o in outcomes if len(o.attempts) > 1]
    assert len(retried) >= 20
    for outcome in retried:
        *failures, last = outcome.attempts
        assert last.ok and all(a.error is not None and a.error["retryable"] for a in failures)


def test_the_docs_table_says_what_the_matrix_proves() -> None:
    """docs/resilience.md has one row per fault, naming the same kind and retry decision."""
    text = DOCS.read_text(encoding="utf-8")
    for row in MATRIX:
        match = re.search(rf"^\| `{re.escape(row.fault)}`[^|]*\|(.*)$", text, re.MULTILINE)
        assert match, f"no row for {row.fault} in {DOCS.name}"
        cells = [c.strip() for c in match.group(1).split("|")]
        assert cells[0] == f"`{row.kind.value}`", (row.fault, cells)
        assert cells[1].startswith("yes" if row.retried else "no"), (row.fault, cells)
