"""Anthropic's Messages API through fanwise's aiohttp transport, against the simulator's own face.

Bodies, streams, errors and rate-limit headers, over real loopback HTTP: what a Messages body
asks reaches the server unchanged, what comes back is read as Anthropic sends it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fanwise import Call, Engine, ErrorKind, Fulfilled, Rejected, Request, RetryPolicy
from fanwise.models.anthropic import AnthropicModel, messages_url
from fanwise.models.anthropic_bodies import (
    MessagesStream,
    beta_headers,
    error_from_body,
    limit_headers,
    messages_usage,
    reset_seconds,
)
from fanwise.models.base import Endpoint
from fanwise.outcome import AuthError, RateLimited, ServerError
from fanwise.retry import NoWait
from fanwise.simulator import Simulator

PROMPT = "What are the top attractions to visit in Kyoto?"
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def claude(sim: Simulator, **kwargs: Any) -> AnthropicModel:
    return AnthropicModel(api_key="test", base_url=sim.url, **kwargs)


def ask(prompt: str = PROMPT, **kwargs: Any) -> Request:
    return Request.text(prompt, "claude-sonnet-4-5", endpoint=Endpoint.MESSAGES, **kwargs)


def test_a_prompt_becomes_a_messages_body_with_max_tokens_and_a_thinking_budget() -> None:
    """max_tokens is always there (the API requires it); an effort becomes a thinking budget."""
    plain = ask(instructions="Be brief.", reasoning_effort="minimal").body
    assert plain == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": PROMPT}],
    }
    thinking = ask(reasoning_effort="medium").body
    assert thinking["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert thinking["max_tokens"] == 8192
    assert ask(max_output_tokens=300).body["max_tokens"] == 300
    request = ask(instructions="Be brief.")
    assert request.prompt == PROMPT and request.instructions == "Be brief."


def test_the_base_url_is_the_api_root_as_the_sdk_takes_it() -> None:
    """A root gets /v1/messages; a root given with /v1 is not doubled."""
    assert messages_url("https://api.anthropic.com") == "https://api.anthropic.com/v1/messages"
    assert messages_url("http://127.0.0.1:9/v1/") == "http://127.0.0.1:9/v1/messages"


async def test_a_message_comes_back_whole_with_its_usage(simulator: Simulator) -> None:
    """The body reaches the server unchanged, and the Message comes back whole, with its usage."""
    async with claude(simulator) as model:
        completion = await model.complete(ask(instructions="Be brief."))
    sent = json.loads(simulator.received[-1][1])
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    body = completion.body
    assert body["type"] == "message" and body["content"][0]["text"] == completion.text
    assert completion.endpoint is Endpoint.MESSAGES and completion.finish_reason == "end_turn"
    assert completion.usage.input_tokens == body["usage"]["input_tokens"] > 0
    assert completion.response_id == body["id"] and str(body["id"]).startswith("msg_")
    assert completion.request_id and completion.request_id.startswith("req_")


async def test_a_stream_arrives_in_deltas_and_adds_up_to_the_message(simulator: Simulator) -> None:
    """message_start, content_block_delta, message_delta, message_stop: the deltas are the text."""
    deltas: list[str] = []
    async with claude(simulator) as model:
        completion = await model.complete(ask(), on_delta=deltas.append)
    assert len(deltas) > 1 and "".join(deltas) == completion.text
    assert completion.usage.output_tokens > 0 and completion.finish_reason == "end_turn"
    assert completion.body["content"] == [{"type": "text", "text": completion.text}]


async def test_tool_use_comes_back_as_tool_calls(simulator: Simulator) -> None:
    """A tool the request offers and forces comes back as a tool call with JSON arguments."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool = {"name": "weather", "description": "The weather", "input_schema": schema}
    extra = {"tools": [tool], "tool_choice": {"type": "tool", "name": "weather"}}
    async with claude(simulator) as model:
        completion = await model.complete(ask("Weather in Kyoto?", extra=extra))
    [call] = completion.tool_calls
    assert call.name == "weather" and "city" in json.loads(call.arguments)
    assert completion.finish_reason == "tool_use"
    assert json.loads(simulator.received[-1][1])["tool_choice"]["function"]["name"] == "weather"


def test_a_streamed_tool_call_is_assembled_from_its_json_deltas() -> None:
    """input_json_delta parts add up to the tool call's arguments, as the SDK assembles them."""
    stream = MessagesStream(lambda _: None)
    message = {"id": "msg_1", "type": "message", "model": "claude", "content": [], "usage": {}}
    tool = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": tool},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": '{"city": "Ky'}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": 'oto"}'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
         "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]  # fmt: skip
    assert [stream.take(json.dumps(e)) for e in events][-1] is True
    completion = stream.result({})
    [call] = completion.tool_calls
    assert json.loads(call.arguments) == {"city": "Kyoto"} and call.id == "toolu_1"
    assert completion.usage.output_tokens == 9 and completion.finish_reason == "tool_use"


def test_usage_counts_cache_writes_and_reads_as_input() -> None:
    """Anthropic reports cache tokens apart from input tokens; fanwise adds them up."""
    usage = messages_usage(
        {
            "input_tokens": 10,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000,
            "output_tokens": 7,
        }
    )
    assert (usage.input_tokens, usage.cached_tokens, usage.output_tokens) == (1110, 1000, 7)


def test_rate_limit_headers_with_rfc3339_resets_read_as_the_limiter_reads_them() -> None:
    """anthropic-ratelimit-* (resets as RFC 3339 times) become x-ratelimit-* with durations."""
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:01.2Z",
        "anthropic-ratelimit-input-tokens-limit": "30000",
        "anthropic-ratelimit-input-tokens-remaining": "29000",
        "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:02+00:00",
    }
    read = limit_headers(headers, lambda: NOW)
    assert read["x-ratelimit-limit-requests"] == "50"
    assert read["x-ratelimit-remaining-requests"] == "49"
    assert read["x-ratelimit-reset-requests"] == "1.200s"
    assert read["x-ratelimit-limit-tokens"] == "30000"
    assert read["x-ratelimit-reset-tokens"] == "2.000s"
    assert read["anthropic-ratelimit-requests-limit"] == "50", "the originals stay"
    assert reset_seconds("not a time") is None
    assert reset_seconds("2025-12-31T23:00:00Z", lambda: NOW) == 0.0


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (529, {"type": "overloaded_error", "message": "Overloaded"}, ErrorKind.SERVER),
        (429, {"type": "rate_limit_error", "message": "slow down"}, ErrorKind.RATE_LIMITED),
        (
            429,
            {
                "type": "rate_limit_error",
                "message": "monthly limit",
                "details": {"error_code": "enforced_spend_limit_reached"},
            },
            ErrorKind.AUTH,
        ),
        (
            400,
            {"type": "invalid_request_error", "message": "Your credit balance is too low"},
            ErrorKind.AUTH,
        ),
        (402, {"type": "billing_error", "message": "payment required"}, ErrorKind.AUTH),
        (400, {"type": "invalid_request_error", "message": "messages: bad"}, ErrorKind.BAD_REQUEST),
        (401, {"type": "authentication_error", "message": "bad key"}, ErrorKind.AUTH),
        (413, {"type": "request_too_large", "message": "too big"}, ErrorKind.BAD_REQUEST),
        (500, {"type": "api_error", "message": "oops"}, ErrorKind.SERVER),
    ],
)
def test_every_status_becomes_a_kind(status: int, error: dict[str, Any], kind: ErrorKind) -> None:
    """529 is a retryable server error; spend limits and credit are final auth errors."""
    raw = json.dumps({"type": "error", "error": error}).encode()
    found = error_from_body(status, raw, {"retry-after": "3"})
    assert found.kind is kind, found
    assert found.body == raw
    if kind is ErrorKind.RATE_LIMITED:
        assert isinstance(found, RateLimited) and found.retry_after == 3.0


def test_an_error_event_inside_a_stream_is_a_server_error() -> None:
    """An overloaded_error mid-stream fails the attempt as server, which is retried."""
    stream = MessagesStream(lambda _: None)
    start = {"type": "message_start", "message": {"id": "msg_1", "content": [], "usage": {}}}
    stream.take(json.dumps(start))
    with pytest.raises(ServerError):
        stream.take('{"type": "error", "error": {"type": "overloaded_error", "message": "x"}}')


async def test_a_request_for_another_endpoint_is_refused_before_sending(
    simulator: Simulator,
) -> None:
    """A Responses body sent to Anthropic is a bad request, and nothing reaches the server."""
    async with claude(simulator) as model:
        engine = Engine(model, retry=RetryPolicy(retries=2), sleep=NoWait())
        [outcome] = await engine.run([Call(Request.text(PROMPT))])
    assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.BAD_REQUEST
    assert simulator.stats().requests == 0


async def test_a_529_storm_is_ridden_out_and_a_spend_limit_stops_at_once(
    simulator: Simulator,
) -> None:
    """Four 529s then an answer: fulfilled at attempt 5; a spend limit: one attempt, no retry."""
    simulator.script("storm", ["529"] * 4 + ["ok"])
    simulator.script("spend", ["spend", "ok"])
    sleep = NoWait()
    async with claude(simulator) as model:
        engine = Engine(model, retry=RetryPolicy(retries=5), sleep=sleep, seed=1)
        storm, spend = await engine.run([Call(ask("storm in Kyoto")), Call(ask("spend in Kyoto"))])
    assert isinstance(storm, Fulfilled) and len(storm.attempts) == 5
    assert all(a.error and a.error["kind"] == "server" for a in storm.attempts[:4])
    assert isinstance(spend, Rejected) and spend.kind is ErrorKind.AUTH
    assert len(spend.attempts) == 1


async def test_the_simulator_reports_limits_the_anthropic_way(start_simulator: Any) -> None:
    """A limited simulator sends anthropic-ratelimit-* with RFC 3339 resets, read by the model."""
    sim = await start_simulator(rpm=60, tpm=100_000)
    async with claude(sim) as model:
        completion = await model.complete(ask())
    headers = completion.headers
    assert headers["anthropic-ratelimit-requests-limit"] == "60"
    assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert "x-ratelimit-limit-requests" in headers and "x-request-id" not in headers
    assert float(headers["x-ratelimit-reset-requests"].rstrip("s")) <= 60.0


async def test_an_empty_credit_balance_error_never_retries_even_as_auth(
    simulator: Simulator,
) -> None:
    """The model raises AuthError for the simulator's spend fault, over real HTTP."""
    simulator.script(PROMPT, ["spend"])
    async with claude(simulator) as model:
        with pytest.raises(AuthError) as caught:
            await model.complete(ask())
    assert caught.value.code == "enforced_spend_limit_reached"


async def test_both_transports_read_the_same_message(simulator: Simulator) -> None:
    """aiohttp and the official SDK send the same body and read the same Message, whole or
    streamed (the simulator is reset between them, so each sees a first attempt)."""
    from fanwise.models.anthropic_sdk import AnthropicSdkModel

    results = []
    for model in (claude(simulator), AnthropicSdkModel(api_key="test", base_url=simulator.url)):
        simulator.reset()
        async with model:
            whole = await model.complete(ask(instructions="Be brief."))
            sent = json.loads(simulator.received[-1][1])
            streamed = await model.complete(ask(instructions="Be brief."), on_delta=lambda _: None)
        results.append((whole.to_dict(), whole.body, streamed.to_dict(), sent))
    (fast, fast_body, fast_stream, fast_sent), (sdk, sdk_body, sdk_stream, sdk_sent) = results
    for data in (fast, sdk, fast_stream, sdk_stream):
        data.pop("request_id", None)  # each call has its own
    assert fast == sdk and fast_body == sdk_body and fast_sent == sdk_sent
    assert fast_stream == sdk_stream and fast_stream["text"] == fast["text"]


async def test_the_sdk_transport_is_chosen_by_the_factory() -> None:
    """--transport sdk with --provider anthropic builds the SDK model; aiohttp is the default."""
    from fanwise.models.anthropic_sdk import AnthropicSdkModel
    from fanwise.models.providers import provider_model

    environ = {"ANTHROPIC_API_KEY": "k"}
    assert isinstance(
        provider_model("anthropic", transport="sdk", environ=environ), AnthropicSdkModel
    )
    assert isinstance(provider_model("anthropic", environ=environ), AnthropicModel)


async def test_the_python_api_asks_claude_by_its_model_name(simulator: Simulator) -> None:
    """fanwise.ask_all with a claude-* model and only ANTHROPIC_API_KEY: Messages bodies."""
    from fanwise import aask_all

    environ = {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": simulator.url}
    [outcome] = await aask_all(["Which temples?"], model="claude-haiku-4-5", environ=environ)
    assert isinstance(outcome, Fulfilled) and outcome.value.endpoint is Endpoint.MESSAGES
    # the simulator keeps the body as its brain read it: max_tokens as max_completion_tokens
    assert json.loads(simulator.received[-1][1])["max_completion_tokens"] == 4096


@pytest.mark.parametrize("form", ["output_config", "output_format"])
async def test_structured_output_comes_back_as_json_that_fits_the_schema(
    simulator: Simulator, form: str
) -> None:
    """A JSON schema (GA output_config.format, or the beta output_format): the text is JSON."""
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    wanted = {"type": "json_schema", "schema": schema}
    extra = {"output_config": {"format": wanted}} if form == "output_config" else {form: wanted}
    async with claude(simulator) as model:
        completion = await model.complete(ask("Plan a trip to Kyoto.", extra=extra))
    answer = json.loads(completion.text)
    assert set(answer) == {"city", "days"} and isinstance(answer["days"], int)
    beta = {"anthropic-beta": "structured-outputs-2025-11-13"} if form == "output_format" else {}
    assert beta_headers(extra) == beta, "the beta form gets its header; the GA form needs none"
