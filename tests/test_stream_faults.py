"""A stream that stops early is not an answer; a character split between two events is joined.

Every stream reader (Responses, Chat Completions, Anthropic Messages, Gemini's Chat-compatible
endpoint) over both transports (aiohttp and the official SDK), against the simulator's ``cut``
and ``split`` faults over loopback HTTP.
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanwise import Call, Engine, ErrorKind, Fulfilled, Rejected, Request, RetryPolicy
from fanwise.models.anthropic import AnthropicModel
from fanwise.models.anthropic_bodies import MessagesStream
from fanwise.models.anthropic_sdk import AnthropicSdkModel
from fanwise.models.base import Endpoint, Model
from fanwise.models.bodies import ChatStream, ResponsesStream, read_body
from fanwise.models.fast import FastOpenAIModel
from fanwise.models.gemini import GeminiModel
from fanwise.models.openai import OpenAIModel
from fanwise.models.surrogates import Halves, whole
from fanwise.outcome import InvalidResponse
from fanwise.retry import NoWait
from fanwise.simulator import Simulator, SimulatorConfig
from fanwise.simulator.core import SimulatorCore
from fanwise.simulator.request import Api
from fanwise.simulator.streamfaults import SPLIT
from fanwise.ui.stream import SynthesisStream
from tests.conftest import SimulatorProcess
from tests.processes import run_fanwise

PROMPT = "What are the top attractions to visit in Kyoto?"
POLICY = RetryPolicy(retries=3)
READERS = ["responses", "chat", "anthropic", "gemini"]
TRANSPORTS = ["aiohttp", "sdk"]


def model_for(sim: Simulator, reader: str, transport: str) -> Model:
    """The model that reads ``reader``'s streams over ``transport``."""
    if reader == "anthropic":
        if transport == "sdk":
            return AnthropicSdkModel(api_key="test", base_url=sim.url)
        return AnthropicModel(api_key="test", base_url=sim.url)
    if reader == "gemini":
        base = sim.url + "/v1beta/openai"
        return GeminiModel(api_key="g", base_url=base, transport=transport, environ={})
    if transport == "sdk":
        return OpenAIModel(api_key="test", base_url=sim.base_url)
    return FastOpenAIModel(api_key="test", base_url=sim.base_url, environ={})


def request_for(reader: str) -> Request:
    if reader == "anthropic":
        return Request.text(PROMPT, "claude-sonnet-4-5", endpoint=Endpoint.MESSAGES)
    if reader == "responses":
        return Request.text(PROMPT)
    return Request.text(PROMPT, "gemini-2.5-flash", endpoint=Endpoint.CHAT)


async def streamed(
    sim: Simulator, reader: str, transport: str
) -> tuple[Fulfilled[Any] | Rejected, list[str]]:
    """One call streamed through the engine (as the synthesis is), and the deltas it showed."""
    deltas: list[str] = []
    async with model_for(sim, reader, transport) as model:
        engine = Engine(model, retry=POLICY, timeout=10, sleep=NoWait(), seed=1)
        outcome = await engine.complete(Call(request_for(reader)), on_delta=deltas.append)
    return outcome, deltas


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("reader", READERS)
async def test_a_clean_early_end_is_retried(
    simulator: Simulator, reader: str, transport: str
) -> None:
    """A stream cut short (no finishing event) is invalid_response, and the retry gets it whole."""
    simulator.script(PROMPT, ["cut", "ok"])
    outcome, _ = await streamed(simulator, reader, transport)
    assert isinstance(outcome, Fulfilled), outcome
    [first, second] = outcome.attempts
    assert first.error is not None and first.error["kind"] == "invalid_response"
    assert "cut short" in first.error["message"]
    assert second.ok and outcome.value.finish_reason in ("stop", "completed", "end_turn")


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("reader", READERS)
async def test_a_stream_always_cut_is_never_an_answer(
    simulator: Simulator, reader: str, transport: str
) -> None:
    """A stream cut short on every try fails as invalid_response after every retry."""
    simulator.script(PROMPT, ["cut"] * POLICY.max_attempts)
    outcome, deltas = await streamed(simulator, reader, transport)
    assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.INVALID_RESPONSE
    assert len(outcome.attempts) == POLICY.max_attempts
    assert deltas, "each attempt streamed part of its text before it was cut"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("reader", READERS)
async def test_a_split_character_comes_out_whole(
    simulator: Simulator, reader: str, transport: str
) -> None:
    """An emoji sent as two surrogate halves in two events is one character, streamed and kept."""
    simulator.script(PROMPT, ["split"])
    outcome, deltas = await streamed(simulator, reader, transport)
    assert isinstance(outcome, Fulfilled), outcome
    text = outcome.value.text
    assert text.endswith(SPLIT) and "".join(deltas) == text
    assert all(whole(delta) == delta for delta in deltas), "no delta holds a lone half"
    assert len(outcome.attempts) == 1
    assert json.loads(outcome.value.raw), "the body assembled from the stream is valid UTF-8"


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_the_split_fault_sends_the_halves_in_two_events(api: Api) -> None:
    """The split fault ends one event with the high half and starts the next with the low."""
    core = SimulatorCore(SimulatorConfig())
    body = {"model": "gpt-5", "stream": True}
    turns = [{"role": "user", "content": PROMPT}]
    body |= {"input": PROMPT} if api == "responses" else {"messages": turns}
    reply = core.call(api, {"x-fanwise-fault": "split"}, json.dumps(body).encode())
    wire = (reply.body + (reply.tail or b"")).decode()
    halves = [e for e in wire.split("\n\n") if ("\\ud83c" in e) != ("\\udf5c" in e)]
    assert len(halves) == 2, halves
    events = halves
    assert '\\ud83c"' in events[0] and '"\\udf5c end' in events[1]


def chat_chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> str:
    delta = {} if content is None else {"content": content}
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
LEGITIMATE: dict[str, list[str]] = {
    "finish in the last chunk, then [DONE]": [chat_chunk("Hi"), chat_chunk(None, "stop"), "[DONE]"],
    "finish with the last text, no [DONE] (ik_llama.cpp)": [chat_chunk("Hi", "stop")],
    "finish, then usage in a chunk of its own (OpenAI, vLLM)": [
        chat_chunk("Hi"),
        chat_chunk("", "stop"),
        json.dumps({"choices": [], "usage": USAGE}),
        "[DONE]",
    ],
    "finish and usage in one chunk (llama.cpp)": [
        chat_chunk("Hi"),
        chat_chunk(None, "length", usage=USAGE),
        "[DONE]",
    ],
}


@pytest.mark.parametrize("events", LEGITIMATE.values(), ids=LEGITIMATE.keys())
def test_a_whole_chat_stream_is_accepted(events: list[str]) -> None:
    """Every way real servers end a whole Chat stream is read as the answer."""
    reader = ChatStream(lambda _: None, "m")
    for data in events:
        reader.take(data)
    completion = reader.result({})
    assert completion.text == "Hi" and completion.finish_reason in ("stop", "length")


CUT: dict[str, list[str]] = {
    "no finish_reason, then [DONE] (llama.cpp dropping a request)": [chat_chunk("Hi"), "[DONE]"],
    "no finish_reason, no [DONE]": [chat_chunk("Hi"), chat_chunk(" the")],
    "usage but no finish_reason": [chat_chunk("Hi"), json.dumps({"choices": [], "usage": USAGE})],
}


@pytest.mark.parametrize("events", CUT.values(), ids=CUT.keys())
def test_a_chat_stream_without_a_finish_reason_is_cut(events: list[str]) -> None:
    """A Chat stream with no finish_reason was cut short, whatever closed it."""
    reader = ChatStream(lambda _: None, "m")
    for data in events:
        reader.take(data)
    with pytest.raises(InvalidResponse, match="cut short"):
        reader.result({})


def test_a_responses_stream_without_its_completed_event_is_cut() -> None:
    """A Responses stream with deltas but no response.completed is cut short."""
    reader = ResponsesStream(lambda _: None)
    reader.take(json.dumps({"type": "response.output_text.delta", "delta": "Hi"}))
    with pytest.raises(InvalidResponse, match="cut short"):
        reader.result({})


def test_a_messages_stream_without_message_stop_is_cut() -> None:
    """A Messages stream that ends after message_delta, before message_stop, is cut short."""
    reader = MessagesStream(lambda _: None)
    start = {"type": "message_start", "message": {"id": "m", "type": "message", "content": []}}
    reader.take(json.dumps(start))
    delta = {"type": "text_delta", "text": "Hi"}
    reader.take(json.dumps({"type": "content_block_delta", "index": 0, "delta": delta}))
    with pytest.raises(InvalidResponse, match="cut short"):
        reader.result({})


def test_halves_hold_back_a_high_surrogate_until_its_pair() -> None:
    """A trailing high half waits for the next delta; one that never pairs becomes U+FFFD."""
    halves = Halves()
    assert halves.feed("noodles \ud83c") == "noodles "
    assert halves.feed("\udf5c end") == "\U0001f35c end"
    assert halves.feed("\ud83c") == "" and halves.feed("x") == "\ufffdx"
    assert halves.feed("last \ud83c") == "last " and halves.flush() == "\ufffd"
    assert whole("plain") == "plain" and whole("a\udf5cb") == "a\ufffdb"


def travel(sim: SimulatorProcess, journal: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """``fanwise travel Kyoto`` over Chat Completions against the simulator, streamed."""
    return run_fanwise(
        "travel", "Kyoto", "--api", "chat", "--retries", "2", "--plain", "--journal",
        str(journal), "--provider", "openai", "--base-url", sim.base_url, *flags,
        env={"OPENAI_API_KEY": "test", "PYTHONIOENCODING": "utf-8"},
    )  # fmt: skip


def synthesis_rows(journal: Path) -> list[tuple[str, str | None]]:
    """(status, error kind) of the synthesis call (labelled "travel guide for Kyoto")."""
    db = sqlite3.connect(journal)
    try:
        rows = db.execute("SELECT label, status, error_kind FROM calls").fetchall()
    finally:
        db.close()
    return [(status, kind) for label, status, kind in rows if "guide for" in label]


def script_file(tmp_path: Path, faults: list[str]) -> str:
    """A ``--script`` file whose rule matches only the synthesis (it quotes the answers)."""
    path = tmp_path / "script.json"
    path.write_text(json.dumps([{"match": "simulated answer to", "faults": faults}]))
    return str(path)


def test_a_synthesis_always_cut_is_not_a_guide(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """A synthesis whose stream is cut on every try: no "Synthesized", no exit 0, not journaled
    as fulfilled."""
    sim = spawn_simulator("--script", script_file(tmp_path, ["cut"] * 3))
    journal = tmp_path / "journal.db"
    result = travel(sim, journal)
    assert result.returncode != 0, result.stderr
    assert "Synthesized" not in result.stderr + result.stdout
    assert "invalid_response" in result.stderr
    rows = synthesis_rows(journal)
    assert rows and all(status != "fulfilled" for status, _ in rows), rows


def test_a_split_character_reaches_stdout_whole(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """A synthesis streamed with an emoji split between two events prints the emoji, exit 0."""
    sim = spawn_simulator("--script", script_file(tmp_path, ["split"]))
    result = travel(sim, tmp_path / "journal.db")
    assert result.returncode == 0, result.stderr
    assert SPLIT.strip() in result.stdout and "\ufffd" not in result.stdout


def test_a_character_the_terminal_cannot_encode_does_not_lose_the_answer() -> None:
    """Writing to an ASCII stdout replaces what it cannot encode; the rest of the text is kept."""
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    stream = SynthesisStream(out, io.StringIO())
    stream("noodles \U0001f35c and ")
    stream("\ud83c lone")
    stream(" end")
    out.flush()
    assert raw.getvalue() == b"noodles ? and ? lone end"
    assert stream.streamed == "noodles \U0001f35c and \ud83c lone end"


LONE = '"noodles \\ud83c end"'
WHOLE_BODIES = {
    Endpoint.CHAT: '{"choices": [{"index": 0, "message": {"content": %s}, '
    '"finish_reason": "stop"}]}',
    Endpoint.RESPONSES: '{"status": "completed", "output": [{"type": "message", "content": '
    '[{"type": "output_text", "text": %s}]}]}',
    Endpoint.MESSAGES: '{"type": "message", "content": [{"type": "text", "text": %s}]}',
}


@pytest.mark.parametrize("endpoint", WHOLE_BODIES, ids=str)
def test_a_lone_half_in_a_whole_body_is_readable(endpoint: Endpoint) -> None:
    """A lone surrogate escape in a whole body reads as U+FFFD (the raw body kept as it came),
    so the answer can be journaled and printed."""
    raw = (WHOLE_BODIES[endpoint] % LONE).encode()
    completion = read_body(endpoint, raw, {})
    assert completion.text == "noodles \ufffd end" and completion.raw == raw
    completion.text.encode()
