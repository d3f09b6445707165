"""The simulator's Files and Batches APIs, driven through the official openai SDK over loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
from click.testing import CliRunner
from openai import AsyncOpenAI, OpenAI
from openai.types import Batch, BatchRequestCounts

from fanwise.simulator import BatchTiming, ConfigError, Simulator
from fanwise.simulator.command import simulate
from tests.conftest import SimulatorProcess, StartSimulator


def counts(batch: Batch) -> BatchRequestCounts:
    """The batch's request counts (the SDK types them optional; the simulator always sends them)."""
    assert batch.request_counts is not None
    return batch.request_counts


class FakeClock:
    """A monotonic clock moved by hand; the simulated batch clock runs ``speed`` times faster."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


SPEED = 3600.0  # simulated seconds per (fake) second


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(start_simulator: StartSimulator, clock: FakeClock) -> Simulator:
    return await start_simulator(batch=BatchTiming(speed=SPEED), clock=clock)


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(api_key="test", base_url=sim.base_url, max_retries=0) as c:
        yield c


def request_line(custom_id: str, prompt: str, url: str = "/v1/responses") -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-5-mini"}
    if url == "/v1/responses":
        body["input"] = prompt
    else:
        body["messages"] = [{"role": "user", "content": prompt}]
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


async def submit(
    client: AsyncOpenAI, lines: list[dict[str, Any]], endpoint: str = "/v1/responses"
) -> Any:
    uploaded = await client.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")
    return await client.batches.create(
        input_file_id=uploaded.id,
        endpoint=endpoint,  # type: ignore[arg-type]  # a str from the parameter
        completion_window="24h",
    )


async def read_lines(client: AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    content = await client.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines()]


def advance(clock: FakeClock, simulated_seconds: float) -> None:
    clock.now += simulated_seconds / SPEED


async def test_a_batch_moves_through_its_statuses_and_returns_every_line(
    client: AsyncOpenAI, clock: FakeClock
) -> None:
    """validating -> in_progress (counts rise) -> finalizing -> completed, with an output file."""
    batch = await submit(client, [request_line(f"q{i}", f"question {i}") for i in range(4)])
    assert batch.status == "validating"
    assert batch.request_counts.total == 4
    assert batch.expires_at - batch.created_at == 24 * 3600
    advance(clock, 60 + 300)  # validated, half of the 600 s run
    batch = await client.batches.retrieve(batch.id)
    assert (batch.status, counts(batch).completed) == ("in_progress", 2)
    advance(clock, 300)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "finalizing"
    assert batch.output_file_id is None
    advance(clock, 60)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "completed"
    assert counts(batch).completed == 4
    assert batch.error_file_id is None
    assert batch.usage is not None and batch.usage.output_tokens > 0
    lines = await read_lines(client, batch.output_file_id)
    assert [line["custom_id"] for line in lines] == ["q0", "q1", "q2", "q3"]
    response = lines[0]["response"]
    assert response["status_code"] == 200
    assert response["request_id"].startswith("req_")
    assert response["body"]["output"][-1]["content"][0]["text"].startswith("simulated answer")
    assert lines[0]["id"].startswith("batch_req_") and lines[0]["error"] is None


async def test_chat_batches_answer_with_chat_completions(
    client: AsyncOpenAI, clock: FakeClock
) -> None:
    """A /v1/chat/completions batch gets ChatCompletion bodies."""
    url = "/v1/chat/completions"
    batch = await submit(client, [request_line("c", "hello", url)], endpoint=url)
    advance(clock, 1000)
    batch = await client.batches.retrieve(batch.id)
    (line,) = await read_lines(client, batch.output_file_id)
    assert line["response"]["body"]["object"] == "chat.completion"


async def test_a_scripted_fault_fails_only_its_line(
    sim: Simulator, client: AsyncOpenAI, clock: FakeClock
) -> None:
    """A script rule fails one line: it goes to the error file, the others to the output."""
    sim.script("poison", ["500"])
    lines = [request_line("ok-1", "fine"), request_line("bad", "poison pill")]
    batch = await submit(client, lines)
    advance(clock, 1000)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "completed"
    assert (counts(batch).completed, counts(batch).failed) == (1, 1)
    (error,) = await read_lines(client, batch.error_file_id)
    assert error["custom_id"] == "bad"
    assert error["response"]["status_code"] == 500
    assert error["response"]["body"]["error"]["type"] == "server_error"
    assert [line["custom_id"] for line in await read_lines(client, batch.output_file_id)] == [
        "ok-1"
    ]


async def test_a_batch_past_its_window_expires_with_the_lines_it_ran(
    start_simulator: StartSimulator, clock: FakeClock
) -> None:
    """A run longer than 24 h expires: the lines run so far are kept, the rest expire."""
    timing = BatchTiming(speed=SPEED, validate=0, duration=48 * 3600)
    sim = await start_simulator(batch=timing, clock=clock)
    async with AsyncOpenAI(api_key="t", base_url=sim.base_url, max_retries=0) as client:
        batch = await submit(client, [request_line(f"q{i}", f"q {i}") for i in range(4)])
        advance(clock, 30 * 3600)
        batch = await client.batches.retrieve(batch.id)
        assert batch.status == "expired"
        assert batch.expired_at == batch.expires_at
        assert (counts(batch).completed, counts(batch).failed) == (2, 2)
        done = await read_lines(client, batch.output_file_id)
        expired = await read_lines(client, batch.error_file_id)
    assert [line["custom_id"] for line in done] == ["q0", "q1"]
    assert [line["custom_id"] for line in expired] == ["q2", "q3"]
    assert expired[0]["response"] is None
    assert expired[0]["error"]["code"] == "batch_expired"


async def test_cancel_keeps_what_ran_and_cancels_the_rest(
    client: AsyncOpenAI, clock: FakeClock
) -> None:
    """cancel -> cancelling -> cancelled; unrun lines are batch_cancelled errors."""
    batch = await submit(client, [request_line(f"q{i}", f"q {i}") for i in range(4)])
    advance(clock, 60 + 150)  # one line done
    batch = await client.batches.cancel(batch.id)
    assert batch.status == "cancelling"
    advance(clock, 60)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "cancelled"
    cancelled = await read_lines(client, batch.error_file_id)
    assert [line["error"]["code"] for line in cancelled] == ["batch_cancelled"] * 3
    with pytest.raises(openai.ConflictError):
        await client.batches.cancel(batch.id)


async def test_a_bad_input_file_fails_the_batch_naming_the_lines(
    client: AsyncOpenAI, clock: FakeClock
) -> None:
    """Bad JSON, a wrong url and a repeated custom_id fail the batch; errors give line numbers."""
    uploaded = await client.files.create(
        file=(
            "bad.jsonl",
            b"not json\n"
            + jsonl([request_line("a", "x", "/v1/chat/completions")])
            + jsonl([request_line("b", "y"), request_line("b", "z")]),
        ),
        purpose="batch",
    )
    batch = await client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
    )
    advance(clock, 60)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data is not None
    found = [(e.line, e.code) for e in batch.errors.data]
    assert found == [
        (1, "invalid_json_line"),
        (2, "mismatched_endpoint"),
        (4, "duplicate_custom_id"),
    ]


async def test_batch_lines_do_not_spend_the_live_rate_limits(
    start_simulator: StartSimulator, clock: FakeClock
) -> None:
    """Ten batch lines run under rpm=1, and a live call afterwards is still admitted."""
    sim = await start_simulator(rpm=1, batch=BatchTiming(speed=SPEED), clock=clock)
    async with AsyncOpenAI(api_key="t", base_url=sim.base_url, max_retries=0) as client:
        batch = await submit(client, [request_line(f"q{i}", f"q {i}") for i in range(10)])
        advance(clock, 1000)
        batch = await client.batches.retrieve(batch.id)
        assert counts(batch).completed == 10
        await client.responses.create(model="gpt-5", input="live")
    assert sim.stats().by_fault == {}


async def test_files_refuse_other_purposes_and_unknown_ids(client: AsyncOpenAI) -> None:
    """purpose other than batch is a 400, an unknown id a 404; list and delete work."""
    with pytest.raises(openai.BadRequestError, match="purpose"):
        await client.files.create(file=("x.jsonl", b"{}"), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve("file_nope")
    with pytest.raises(openai.NotFoundError):
        await client.batches.retrieve("batch_nope")
    uploaded = await client.files.create(file=("x.jsonl", b"{}"), purpose="batch")
    assert [f.id for f in (await client.files.list()).data] == [uploaded.id]
    assert (await client.files.delete(uploaded.id)).deleted
    assert (await client.files.list()).data == []


async def test_batches_list_newest_first_in_pages(client: AsyncOpenAI) -> None:
    """list(limit, after) pages through the batches, newest first."""
    ids = [(await submit(client, [request_line("a", f"p{i}")])).id for i in range(3)]
    first = await client.batches.list(limit=2)
    assert [b.id for b in first.data] == [ids[2], ids[1]]
    assert first.has_more
    rest = await client.batches.list(limit=2, after=ids[1])
    assert [b.id for b in rest.data] == [ids[0]]
    assert not rest.has_more


def test_batch_timing_is_validated() -> None:
    """A speed of 0 or a negative phase is refused with a message that says which."""
    with pytest.raises(ConfigError, match="speed"):
        BatchTiming(speed=0)
    with pytest.raises(ConfigError, match="duration"):
        BatchTiming(duration=-1)


def test_the_command_takes_the_batch_clock(
    spawn_simulator: Callable[..., SimulatorProcess],
) -> None:
    """`--batch-speed` makes a simulator process finish a batch within real milliseconds."""
    process = spawn_simulator("--batch-speed", "1000000")
    with OpenAI(api_key="t", base_url=process.base_url, max_retries=0) as client:
        uploaded = client.files.create(
            file=("in.jsonl", jsonl([request_line("a", "x")])), purpose="batch"
        )
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
        )
        for _ in range(200):
            batch = client.batches.retrieve(batch.id)
            if batch.status == "completed":
                break
        assert batch.status == "completed"
    result = CliRunner().invoke(simulate, ["--batch-speed", "0"])
    assert result.exit_code == 2


async def test_a_batch_past_the_enqueued_token_limit_fails_until_the_queue_drains(
    start_simulator: StartSimulator, clock: FakeClock
) -> None:
    """queue_tokens: a second batch while the first runs fails with token_limit_exceeded."""
    sim = await start_simulator(batch=BatchTiming(speed=SPEED, queue_tokens=30), clock=clock)
    async with AsyncOpenAI(api_key="t", base_url=sim.base_url, max_retries=0) as client:
        lines = [request_line("a", "question a"), request_line("b", "question b")]
        first = await submit(client, lines)
        second = await submit(client, lines)
        advance(clock, 60)
        refused = await client.batches.retrieve(second.id)
        assert refused.status == "failed"
        assert refused.errors is not None and refused.errors.data is not None
        assert refused.errors.data[0].code == "token_limit_exceeded"
        advance(clock, 1000)
        assert (await client.batches.retrieve(first.id)).status == "completed"
        third = await submit(client, lines)
        advance(clock, 1000)
        assert (await client.batches.retrieve(third.id)).status == "completed"
