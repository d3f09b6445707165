"""The Batch API dispatch: its round trip against the simulator, into the real SQLite journal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fanwise import Call, Fulfilled, Plan, Rejected, Request, RetryPolicy
from fanwise.batchapi import BatchClient, BatchLimits, JournalLedger, Polling
from fanwise.batchapi.files import request_line
from fanwise.batchapi.results import read_files, read_result
from fanwise.engine import Engine
from fanwise.events import BatchProgress, CallRetrying, CallSettled, CallStarted, Event
from fanwise.journal import Journal, JournalStore
from fanwise.models.base import Endpoint
from fanwise.models.openai import OpenAIModel
from fanwise.models.settings import ModelSettings
from fanwise.outcome import CallError, CallTimeout, ErrorKind
from fanwise.prices import PriceTable
from fanwise.retry import NoWait
from fanwise.simulator import BatchTiming, Simulator
from fanwise.workflow import run_workflow
from tests.conftest import StartSimulator, batch_engine

FAST = Polling(first=0.01, factor=2.0, most=0.05)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal.open(tmp_path / "journal.db") as opened:
        yield opened


@pytest.fixture
async def model(simulator: Simulator) -> AsyncIterator[OpenAIModel]:
    opened = OpenAIModel(api_key="test", base_url=simulator.base_url)
    yield opened
    await opened.aclose()


class Recorder:
    """Every event, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def engine(
    model: OpenAIModel,
    journal: Journal | None = None,
    run_id: int = 0,
    *,
    resume: bool = False,
    **options: Any,
) -> Engine:
    if journal is not None:
        options.setdefault(
            "store",
            JournalStore(journal, run_id, prices=PriceTable(), endpoint="sim", resume=resume),
        )
        options.setdefault("ledger", JournalLedger(journal, run_id))
    options.setdefault("polling", FAST)
    options.setdefault("sleep", NoWait())
    return batch_engine(model, batches=BatchClient(model.client), **options)


def asks(*prompts: str) -> list[Call]:
    return [Call(Request.text(p, model="gpt-5-mini"), label=f"id-{p}") for p in prompts]


class SteppingClock:
    """A clock that moves ``step`` seconds each time it is read: a simulated batch then moves
    on as often as it is looked at, however busy the machine is."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


async def test_calls_go_out_in_files_within_the_limits_and_come_back_in_order(
    start_simulator: StartSimulator, journal: Journal
) -> None:
    """Seven calls, three a file: three batches; every call fulfilled in input order, journaled."""
    # A read of the clock is 18 simulated seconds: validation (60) spans several looks, so the
    # first look always finds the batch `validating` (with the real clock, a slow look missed it).
    simulator = await start_simulator(clock=SteppingClock(0.005))
    model = OpenAIModel(api_key="test", base_url=simulator.base_url)
    async with model:
        await _seven_calls_in_three_files(simulator, model, journal)


async def _seven_calls_in_three_files(
    simulator: Simulator, model: OpenAIModel, journal: Journal
) -> None:
    run_id = journal.start_run("batch", "t", {}, endpoint="sim")
    seen = Recorder()
    batch = engine(model, journal, run_id, limits=BatchLimits(max_requests=3), observer=seen)
    prompts = [f"question {i}" for i in range(7)]
    outcomes = await batch.run(asks(*prompts))
    assert len(simulator.batches.batches) == 3
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    texts = [o.value.text for o in outcomes if isinstance(o, Fulfilled)]
    assert [t.splitlines()[0] for t in texts] == [f"simulated answer to: {p}" for p in prompts]
    first = outcomes[0]
    assert isinstance(first, Fulfilled)
    assert first.value.usage.output_tokens > 0
    assert len(first.attempts) == 1 and first.attempts[0].ok
    assert simulator.stats().requests == 0  # not one live call
    assert journal.totals(run_id).fulfilled == 7
    assert {p.status for p in seen.of(BatchProgress)} >= {"validating", "completed"}
    assert len(seen.of(CallStarted)) == len(seen.of(CallSettled)) == 7
    assert [row.state for row in _ledger_rows(journal, run_id)] == ["collected"] * 3


async def test_files_are_split_by_bytes_too(simulator: Simulator, model: OpenAIModel) -> None:
    """A byte limit a little over two lines makes a file per two calls."""
    line = len(
        request_line(0, "k" * 24, Request.text("question 0", model="gpt-5-mini"), "responses")
    )
    limits = BatchLimits(max_bytes=2 * line + 10)
    outcomes = await engine(model, limits=limits).run(asks(*(f"question {i}" for i in range(5))))
    assert all(o.ok for o in outcomes)
    assert len(simulator.batches.batches) == 3


async def test_a_failed_line_is_classified_and_only_retryable_ones_go_again(
    simulator: Simulator, model: OpenAIModel
) -> None:
    """A 400 line is rejected as bad_request at once; a 500 line goes out again and succeeds."""
    simulator.script("poison", ["400"])
    simulator.script("flaky", ["500", "ok"])
    seen = Recorder()
    outcomes = await engine(model, observer=seen).run(asks("fine", "poison pill", "flaky one"))
    fine, poison, flaky = outcomes
    assert isinstance(fine, Fulfilled) and len(fine.attempts) == 1
    assert isinstance(poison, Rejected) and poison.kind is ErrorKind.BAD_REQUEST
    assert len(poison.attempts) == 1
    assert isinstance(flaky, Fulfilled)
    assert [a.error["kind"] if a.error else None for a in flaky.attempts] == ["server", None]
    assert [e.label for e in seen.of(CallRetrying)] == ["id-flaky one"]
    assert len(simulator.batches.batches) == 2  # the retry went out as a second batch


async def test_expired_lines_are_sent_again_live_with_retry_with_live(
    start_simulator: StartSimulator,
) -> None:
    """Lines a batch never ran (expired) are sent live; each outcome keeps both attempts."""
    timing = BatchTiming(speed=2 * 86400, validate=0, duration=48 * 3600, finalize=0)
    sim = await start_simulator(batch=timing)
    model = OpenAIModel(api_key="t", base_url=sim.base_url)
    try:
        outcomes = await engine(model, retry_with="live").run(asks("a", "b", "c", "d"))
    finally:
        await model.aclose()
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    history = [[a.error["kind"] if a.error else "ok" for a in o.attempts] for o in outcomes]
    assert history == [["ok"], ["ok"], ["timeout", "ok"], ["timeout", "ok"]]
    assert outcomes[2].attempts[0].error["code"] == "batch_expired"  # type: ignore[index]
    assert sim.stats().requests == 2  # only the expired ones went live
    assert sim.stats().attempts == dict.fromkeys("abcd", 1)  # batch lines count as attempts


async def test_expired_lines_that_keep_expiring_end_as_timeouts(
    start_simulator: StartSimulator,
) -> None:
    """With --retry-with batch, a line that expires in every batch is a timeout in the end."""
    timing = BatchTiming(speed=4 * 86400, validate=0, duration=2.5 * 86400, finalize=0)
    sim = await start_simulator(batch=timing)
    model = OpenAIModel(api_key="t", base_url=sim.base_url)
    try:
        batch = engine(model, retry=RetryPolicy(retries=1))
        outcomes = await batch.run(asks("a", "b", "c", "d", "e"))
    finally:
        await model.aclose()
    assert len(sim.batches.batches) == 2
    assert outcomes[0].ok
    last = outcomes[-1]
    assert isinstance(last, Rejected) and isinstance(last.error, CallTimeout)
    assert len(last.attempts) == 2 and "24 h window" in last.message


async def test_a_resumed_run_collects_the_batch_a_dead_process_left_running(
    start_simulator: StartSimulator, journal: Journal
) -> None:
    """The first process dies while its batch runs; the resume makes no new batch, answers all."""
    sim = await start_simulator(batch=BatchTiming(speed=1800))  # about 0.4 s a batch
    model = OpenAIModel(api_key="t", base_url=sim.base_url)
    run_id = journal.start_run("batch", "t", {}, endpoint="sim")
    calls = asks("a", "b", "c")
    running = asyncio.Event()

    def progress(event: Event) -> None:
        if isinstance(event, BatchProgress):
            running.set()

    first = engine(
        model,
        journal,
        run_id,
        observer=progress,
        polling=Polling(0.01, 1, 0.01),
        sleep=asyncio.sleep,
    )
    task = asyncio.create_task(first.run(calls))
    await running.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [row.state for row in _ledger_rows(journal, run_id)] == ["submitted"]
    try:
        again = await engine(model, journal, run_id, resume=True, sleep=asyncio.sleep).run(calls)
    finally:
        await model.aclose()
    assert all(o.ok for o in again)
    assert len(sim.batches.batches) == 1
    assert [row.state for row in _ledger_rows(journal, run_id)] == ["collected"]


async def test_a_resumed_staged_run_collects_a_later_stages_batch_in_that_stage(
    start_simulator: StartSimulator, journal: Journal
) -> None:
    """Stage two's batch, left running by a dead process, is not taken by stage one's resumed
    run (where its answers would be dropped and asked again), but collected by stage two."""
    sim = await start_simulator(batch=BatchTiming(speed=1800))
    model = OpenAIModel(api_key="t", base_url=sim.base_url)
    run_id = journal.start_run("stages", "t", {}, endpoint="sim")
    first, second = asks("a", "b"), asks("c", "d")
    running = asyncio.Event()

    def progress(event: Event) -> None:
        if isinstance(event, BatchProgress):
            running.set()

    dying = engine(model, journal, run_id, polling=Polling(0.01, 1, 0.01), sleep=asyncio.sleep)
    assert all(o.ok for o in await dying.run(first))
    dying.observer = progress
    task = asyncio.create_task(dying.run(second, first_index=2))
    await running.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    try:
        again = engine(model, journal, run_id, resume=True, sleep=asyncio.sleep)
        outcomes = [*await again.run(first), *await again.run(second, first_index=2)]
    finally:
        await model.aclose()
    assert all(o.ok for o in outcomes)
    assert len(sim.batches.batches) == 2, "stage two's batch was sent again"
    assert [row.state for row in _ledger_rows(journal, run_id)] == ["collected", "collected"]


async def test_a_crash_between_upload_and_create_neither_loses_nor_doubles_the_batch(
    simulator: Simulator, model: OpenAIModel, journal: Journal
) -> None:
    """A journaled upload with no batch id: the batch made from it is found, or made once."""
    run_id = journal.start_run("batch", "t", {}, endpoint="sim")
    calls = asks("a", "b")
    data = b"".join(request_line(i, c.key, c.request, "responses") for i, c in enumerate(calls))
    client = BatchClient(model.client)
    ledger = JournalLedger(journal, run_id)
    made = await client.upload("in.jsonl", data)
    await client.create(made, "/v1/responses")  # created, but the process died before writing it
    ledger.uploaded(made, "/v1/responses", [(i, c.key) for i, c in enumerate(calls)])
    lost = await client.upload("in.jsonl", data)  # died before creating it at all
    ledger.uploaded(lost, "/v1/responses", [(i, c.key) for i, c in enumerate(calls)])
    outcomes = await engine(model, journal, run_id).run(calls)
    assert all(o.ok for o in outcomes)
    assert sorted(b.input_file_id for b in simulator.batches.batches.values()) == sorted(
        [made, lost]
    )


async def test_a_line_too_big_for_a_file_is_refused_alone(
    simulator: Simulator, model: OpenAIModel
) -> None:
    """A request bigger than a whole file is a bad_request; the others are sent."""
    outcomes = await engine(model, limits=BatchLimits(max_bytes=300)).run(
        asks("short", "long " * 100)
    )
    assert outcomes[0].ok
    assert isinstance(outcomes[1], Rejected) and outcomes[1].kind is ErrorKind.BAD_REQUEST
    assert outcomes[1].error.code == "batch_line_too_large"  # type: ignore[attr-defined]


async def test_the_deadline_settles_the_waiting_calls_and_keeps_the_batch_for_later(
    start_simulator: StartSimulator, journal: Journal
) -> None:
    """Past the deadline the calls are timeouts, and the batch stays open in the ledger."""
    sim = await start_simulator(batch=BatchTiming(speed=60))  # 12 s a batch
    model = OpenAIModel(api_key="t", base_url=sim.base_url)
    run_id = journal.start_run("batch", "t", {}, endpoint="sim")
    try:
        batch = engine(model, journal, run_id, sleep=asyncio.sleep)
        outcomes = await batch.run(asks("a", "b"), deadline=0.2)
    finally:
        await model.aclose()
    assert all(isinstance(o, Rejected) and o.kind is ErrorKind.TIMEOUT for o in outcomes)
    assert [row.state for row in _ledger_rows(journal, run_id)] == ["submitted"]


async def test_answers_already_in_the_journal_are_not_sent(
    simulator: Simulator, model: OpenAIModel, journal: Journal
) -> None:
    """A resumed run sends only the calls with no answer yet."""
    run_id = journal.start_run("batch", "t", {}, endpoint="sim")
    await engine(model, journal, run_id).run(asks("a"))
    outcomes = await engine(model, journal, run_id, resume=True).run(asks("a", "b"))
    assert isinstance(outcomes[0], Fulfilled) and outcomes[0].cached
    assert outcomes[1].ok
    sizes = sorted(len(b.lines) for b in simulator.batches.batches.values())
    assert sizes == [1, 1]


async def test_a_workflow_researches_in_a_batch_and_synthesizes_live(
    simulator: Simulator, model: OpenAIModel
) -> None:
    """run_workflow on the Batch API dispatch: the questions go in one batch, the synthesis live."""
    plan = Plan("Kyoto", ("What to see?", "How to get around?"))
    result = await run_workflow(plan, engine(model), settings=ModelSettings(model="gpt-5-mini"))
    assert result.status.value == "complete"
    assert len(simulator.batches.batches) == 1
    assert simulator.stats().requests == 1


async def test_fail_fast_is_refused(model: OpenAIModel) -> None:
    """A batch cannot stop at its first failure, so mode all is a clear error."""
    with pytest.raises(ValueError, match="first failure"):
        await engine(model).run(asks("a"), fail_fast=True)


def test_limits_and_polling_are_validated() -> None:
    """Nonsense limits and polling waits are refused up front."""
    with pytest.raises(ValueError, match="at least 1"):
        BatchLimits(max_requests=0)
    with pytest.raises(ValueError, match="first"):
        Polling(first=0)


class _Row:
    def __init__(self, state: str, batch_id: str | None) -> None:
        self.state = state
        self.batch_id = batch_id


def _ledger_rows(journal: Journal, run_id: int) -> list[_Row]:
    rows = journal.db.execute(
        "SELECT state, batch_id FROM batches WHERE run_id = ? ORDER BY id", (run_id,)
    ).fetchall()
    return [_Row(state, batch_id) for state, batch_id in rows]


def test_result_lines_are_classified_like_live_answers() -> None:
    """A 429 line is rate_limited, a cancelled one cancelled, an unknown code server; lines
    for other calls or in bad JSON are ignored."""
    mine = (0, "k0"), (1, "k1"), (2, "k2")
    lines = [
        {
            "custom_id": "0:k0",
            "response": {"status_code": 429, "body": {"error": {"message": "slow"}}},
        },
        {"custom_id": "1:k1", "response": None, "error": {"code": "batch_cancelled"}},
        {"custom_id": "2:k2", "response": None, "error": {"code": "mystery", "message": "?"}},
        {"custom_id": "2:other-key", "response": None, "error": {"code": "batch_expired"}},
    ]
    data = b"not json\n" + b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    found = read_files([data], mine, "responses")
    assert {i: r.kind.value for i, r in found.items() if isinstance(r, CallError)} == {
        0: "rate_limited",
        1: "cancelled",
        2: "server",
    }
    assert read_result({"custom_id": "x"}, "chat").kind is ErrorKind.SERVER  # type: ignore[union-attr]


async def test_a_batch_refused_for_the_enqueued_token_limit_goes_again_later(
    start_simulator: StartSimulator,
) -> None:
    """A file refused with token_limit_exceeded is rate_limited: the next round sends it again."""
    sim = await start_simulator(batch=BatchTiming(queue_tokens=60))
    model = OpenAIModel(api_key="t", base_url=sim.base_url)
    try:
        batch = engine(model, limits=BatchLimits(max_requests=2))
        outcomes = await batch.run(asks("a", "b", "c", "d"))
    finally:
        await model.aclose()
    assert all(o.ok for o in outcomes)
    kinds = [[a.error["kind"] if a.error else "ok" for a in o.attempts] for o in outcomes]
    assert kinds == [["ok"], ["ok"], ["rate_limited", "ok"], ["rate_limited", "ok"]]
    assert [b.status for b in sim.batches.batches.values()] == ["completed", "failed", "completed"]


async def test_a_mixed_file_goes_out_as_one_batch_per_endpoint(
    simulator: Simulator, model: OpenAIModel
) -> None:
    """Chat, Responses and embeddings calls make three batches, each to its own endpoint."""
    calls = [
        *asks("question 0"),
        Call(Request(Endpoint.EMBEDDINGS, {"model": "e", "input": ["a", "b"]}), label="vec"),
        Call(Request.text("question 1", endpoint=Endpoint.CHAT), label="chat"),
        *asks("question 2"),
    ]
    outcomes = await engine(model).run(calls)
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    endpoints = sorted(b.endpoint for b in simulator.batches.batches.values())
    assert endpoints == ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"]
    vectors = outcomes[1]
    assert isinstance(vectors, Fulfilled) and len(vectors.value.embeddings) == 2
    chat = outcomes[2]
    assert isinstance(chat, Fulfilled) and chat.value.body["object"] == "chat.completion"


async def test_a_batch_refused_as_a_whole_is_a_bad_request_not_retried(
    simulator: Simulator, model: OpenAIModel
) -> None:
    """A file the Batch API fails in validation rejects its calls once, with the API's words."""
    streamed = {"model": "gpt-5-mini", "input": "x", "stream": True}  # the Batch API refuses it
    [outcome] = await engine(model).run([Call(Request(Endpoint.RESPONSES, streamed))])
    assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.BAD_REQUEST
    assert "failed validation" in outcome.message and "without stream" in outcome.message
    assert len(simulator.batches.batches) == 1, "not sent again"
