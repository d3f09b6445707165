"""Both transports (the official SDK and fanwise's aiohttp one) behave alike over real HTTP.

Every test runs against the simulator on 127.0.0.1 with each transport; the parity tests run
both on the same fault and compare what comes out, field by field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from fanwise import Call, Engine, ErrorKind, Fulfilled, Rejected, Request, RetryPolicy
from fanwise.cli import cli
from fanwise.models.base import Completion, Model
from fanwise.models.fast import FastOpenAIModel
from fanwise.models.openai import OpenAIModel
from fanwise.models.sse import SseLines
from fanwise.outcome import CallError
from fanwise.retry import NoWait
from fanwise.simulator import Simulator
from tests.conftest import OnApi, StartSimulator

PROMPT = "What are the top attractions to visit in Kyoto?"
TRANSPORTS = ["sdk", "aiohttp"]
APIS = ["responses", "chat"]
FAULTS = {  # the simulator's fault -> the kind both transports must make of it
    "429": ErrorKind.RATE_LIMITED,
    "500": ErrorKind.SERVER,
    "502": ErrorKind.SERVER,
    "503": ErrorKind.SERVER,
    "504": ErrorKind.SERVER,
    "408": ErrorKind.TIMEOUT,
    "409": ErrorKind.SERVER,
    "400": ErrorKind.BAD_REQUEST,
    "401": ErrorKind.AUTH,
    "403": ErrorKind.AUTH,
    "404": ErrorKind.BAD_REQUEST,
    "422": ErrorKind.BAD_REQUEST,
    "drop": ErrorKind.NETWORK,
    "garbage": ErrorKind.INVALID_RESPONSE,
    "empty": ErrorKind.INVALID_RESPONSE,
}


def open_session(model: FastOpenAIModel) -> aiohttp.ClientSession | None:
    """The model's HTTP session now (a call, not an attribute, so mypy does not pin its type)."""
    return model._http.current


def build(transport: str, sim: Simulator, api: str = "responses") -> Any:
    if transport == "sdk":
        return OnApi(OpenAIModel(api_key="test-key", base_url=sim.base_url), api)
    return OnApi(FastOpenAIModel(api_key="test-key", base_url=sim.base_url), api)


async def outcome_of(model: Any, prompt: str, *, stream: bool) -> Completion | CallError:
    try:
        completion: Completion = await model.complete(
            Request.text(prompt), on_delta=(lambda _: None) if stream else None
        )
        return completion
    except CallError as error:
        return error


def error_fields(error: Completion | CallError) -> tuple[Any, ...]:
    assert isinstance(error, CallError), error
    # Two requests a moment apart may straddle a second: their Date headers differ, by design.
    headers = {k: v for k, v in error.headers.items() if k.lower() != "date"}
    return (error.kind, error.status_code, error.retry_after, error.code, headers)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("api", APIS)
async def test_each_transport_answers_with_text_usage_and_headers(
    simulator: Simulator, transport: str, api: str
) -> None:
    """Text, token usage, model, id and lower-cased response headers, on both APIs."""
    model = build(transport, simulator, api)
    completion = await model.complete(Request.text(PROMPT, instructions="Be brief."))
    await model.aclose()
    assert isinstance(model, Model)
    assert PROMPT[:40] in completion.text
    assert completion.usage.input_tokens > 0 and completion.usage.output_tokens > 0
    assert completion.model == "gpt-5" and completion.response_id
    assert completion.headers["x-ratelimit-limit-requests"] == "1000000000"


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [False, True])
async def test_both_transports_return_the_same_completion(
    simulator: Simulator, api: str, stream: bool
) -> None:
    """Same request, same answer: text, usage, model and id agree between the transports."""
    request = Request.text(PROMPT, reasoning_effort="low", max_output_tokens=500, temperature=0.5)
    completions = []
    for transport in TRANSPORTS:
        model = build(transport, simulator, api)
        completions.append(
            await model.complete(request, on_delta=(lambda _: None) if stream else None)
        )
        await model.aclose()
    sdk, fast = completions
    assert fast.text == sdk.text and fast.usage == sdk.usage and fast.model == sdk.model
    assert fast.finish_reason == sdk.finish_reason and fast.endpoint is sdk.endpoint
    assert fast.raw and sdk.raw and fast.body.keys() == sdk.body.keys(), "the whole body, both"
    assert fast.usage.reasoning_tokens > 0, "reasoning.effort reached the server"
    assert simulator.stats().attempts[PROMPT] == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("api", APIS)
async def test_streaming_hands_over_the_text_piece_by_piece(
    simulator: Simulator, transport: str, api: str
) -> None:
    """The pieces given to on_delta join up to the text of a non-streaming call."""
    model = build(transport, simulator, api)
    pieces: list[str] = []
    streamed = await model.complete(Request.text(PROMPT), on_delta=pieces.append)
    whole = await model.complete(Request.text(PROMPT))
    await model.aclose()
    assert len(pieces) > 1 and "".join(pieces) == streamed.text == whole.text
    assert streamed.usage.output_tokens > 0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(("fault", "kind"), FAULTS.items(), ids=list(FAULTS))
async def test_every_fault_is_the_same_error_on_both_transports(
    simulator: Simulator, fault: str, kind: ErrorKind, api: str, stream: bool
) -> None:
    """Kind, status, Retry-After, code and kept headers agree; so does a status error's text."""
    prompt = f"{PROMPT} ({fault}, {api}, {stream})"
    simulator.script(prompt, [fault, fault], retry_after=0.25)
    errors = []
    for transport in TRANSPORTS:
        model = build(transport, simulator, api)
        errors.append(await outcome_of(model, prompt, stream=stream))
        await model.aclose()
    sdk, fast = errors
    assert error_fields(fast) == error_fields(sdk)
    assert isinstance(fast, CallError) and fast.kind is kind
    if fault[0].isdigit():
        assert fast.message == str(sdk) and fast.message.startswith(f"Error code: {fault} - ")
    if fault in ("429", "503"):
        assert fast.retry_after == 0.25 and "retry-after" in fast.headers


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_the_engine_retries_what_is_retryable_on_each_transport(
    simulator: Simulator, transport: str, fault: str
) -> None:
    """One fault, then an answer: retryable kinds end fulfilled at attempt 2, final ones at 1."""
    simulator.script(PROMPT, [fault, "ok"], retry_after=0.01)
    model = build(transport, simulator)
    engine = Engine(model, retry=RetryPolicy(retries=2), sleep=NoWait(), timeout=10)
    [outcome] = await engine.run([Call(Request.text(PROMPT))])
    await model.aclose()
    first = outcome.attempts[0].error
    assert first is not None and first["kind"] == FAULTS[fault].value
    if first["retryable"]:
        assert isinstance(outcome, Fulfilled) and len(outcome.attempts) == 2
    else:
        assert isinstance(outcome, Rejected) and len(outcome.attempts) == 1


async def test_a_hang_is_cut_by_the_attempt_timeout(start_simulator: StartSimulator) -> None:
    """A server that never answers is a timeout on both transports, and nothing is left open."""
    sim = await start_simulator()
    sim.script(PROMPT, ["hang", "hang"])
    for transport in TRANSPORTS:
        model = build(transport, sim)
        engine = Engine(model, timeout=0.2, retry=RetryPolicy(retries=0))
        [outcome] = await engine.run([Call(Request.text(PROMPT))])
        await model.aclose()
        assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.TIMEOUT, transport


async def test_a_refused_connection_is_a_network_error() -> None:
    """Nothing listening on the port: network, retryable, on the lean transport as on the SDK."""
    model = FastOpenAIModel(api_key="k", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(CallError) as caught:
        await model.complete(Request.text(PROMPT))
    await model.aclose()
    assert caught.value.kind is ErrorKind.NETWORK and caught.value.retryable


async def test_one_session_serves_many_calls_and_close_releases_it(simulator: Simulator) -> None:
    """Fifty calls at once share one session; after close() the next call opens a fresh one,
    which ``async with`` closes again."""
    model = FastOpenAIModel(api_key="k", base_url=simulator.base_url)
    engine = Engine(model, concurrency=50)
    outcomes = await engine.run(Call(Request.text(f"Question {i}")) for i in range(50))
    session = open_session(model)
    await model.aclose()
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    assert session is not None and session.closed and open_session(model) is None
    async with model:
        await model.complete(Request.text(PROMPT))
        assert open_session(model) not in (None, session)
    assert open_session(model) is None


def test_the_key_comes_from_the_environment_or_is_refused() -> None:
    """No key anywhere is a clear ValueError; OPENAI_API_KEY and OPENAI_BASE_URL are read."""
    with pytest.raises(ValueError, match="API key"):
        FastOpenAIModel(environ={})
    model = FastOpenAIModel(
        environ={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1/"}
    )
    assert model.base_url == "http://127.0.0.1:1/v1" and model.name == "openai"


def test_sse_events_survive_any_chunking() -> None:
    """Split anywhere, CRLF or LF, multi-line data, a 70 kB line and no final blank line."""
    big = "x" * 70_000  # over aiohttp's 64 KiB line limit
    stream = (
        f': comment\r\nevent: a\r\ndata: {{"n": 1}}\r\n\r\ndata: one\ndata: two\n\n'
        f"id: 7\ndata:{big}\n\ndata: last"
    ).encode()
    for size in (3, 4096, len(stream)):
        lines = SseLines()
        events = []
        for start in range(0, len(stream), size):
            events += lines.feed(stream[start : start + size])
        events += lines.close()
        assert events == ['{"n": 1}', "one\ntwo", big, "last"], size


def test_the_cli_takes_either_transport(simulator_process: str) -> None:
    """`fanwise travel --transport X` writes the same guide through either transport."""
    env = {**os.environ, "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": simulator_process}
    guides = []
    for transport in TRANSPORTS:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "fanwise",
                "travel",
                "Kyoto",
                "--json",
                "--transport",
                transport,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        guides.append(json.loads(result.stdout)["synthesis"]["text"])
    assert guides[0] == guides[1]


def test_an_unknown_transport_is_a_usage_error() -> None:
    """`--transport carrier-pigeon` is exit code 2 with a message naming the flag, no traceback."""
    result = CliRunner().invoke(cli, ["travel", "Kyoto", "--transport", "carrier-pigeon"])
    assert result.exit_code == 2 and "--transport" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_cli_starts_without_the_openai_sdk() -> None:
    """`fanwise` loads the SDK only for --transport sdk or --engine batch (0.5 s and 23 MB)."""
    script = (
        "import sys, fanwise.cli; print(sorted(m for m in sys.modules if m.startswith('openai')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout[:300]
