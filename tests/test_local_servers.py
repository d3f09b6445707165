"""What a local model server needs: output caps it honours, a schema form it takes, time to
restart, and failed questions named briefly."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import pytest
from click.testing import CliRunner

from fanwise import Call, Engine, Request
from fanwise.cli import cli
from fanwise.factory import get_settings
from fanwise.journal.store import call_cost
from fanwise.models.base import Completion, DeltaSink, Endpoint, Model, Usage
from fanwise.models.compat import status_error
from fanwise.models.fast import FastOpenAIModel
from fanwise.models.openai import OpenAIModel
from fanwise.outcome import (
    Attempt,
    BadRequest,
    ErrorKind,
    Fulfilled,
    NetworkError,
    Rejected,
    ServerError,
)
from fanwise.prices import builtin_prices
from fanwise.retry import REFUSED_WAITS, NoWait, RetryPolicy
from fanwise.schemas import Schema
from fanwise.simulator import Simulator
from fanwise.ui.plain import summary_line
from fanwise.workflow import Answer, Plan, Stats, synthesis_prompt

CAP_FIELDS = ("max_output_tokens", "max_completion_tokens", "max_tokens")


def refused() -> NetworkError:
    """A network error as the transports raise it: from the refused connection."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as exc:
            raise NetworkError("Cannot connect to host 127.0.0.1:9") from exc
    except NetworkError as error:
        return error


def test_a_refused_connection_is_retried_for_about_thirty_seconds() -> None:
    """Three retries allow ~2 s of quick backoff; a refusal waits 1, 2, 4, 8, 15 s at most
    (half of each at least), then gives up: time for a local model server to restart."""
    policy, rng = RetryPolicy(retries=3), random.Random(1)
    waits = [policy.delay(n, refused(), rng) for n in range(1, len(REFUSED_WAITS) + 2)]
    assert waits[-1] is None
    for wait, cap in zip(waits, REFUSED_WAITS, strict=False):
        assert wait is not None and cap / 2 <= wait <= cap
    assert 15.0 <= sum(w for w in waits if w is not None) <= 30.0


def test_other_network_failures_and_retries_off_keep_the_usual_backoff() -> None:
    """A reset connection backs off as before; ``retries=0`` retries no refusal either."""
    rng = random.Random(1)
    reset = NetworkError("Connection reset by peer")
    assert RetryPolicy(retries=3).delay(4, reset, rng) is None
    assert RetryPolicy(retries=0).delay(1, refused(), rng) is None
    assert RetryPolicy(retries=3).delay(4, ServerError("500"), rng) is None


@pytest.mark.parametrize("transport", [FastOpenAIModel, OpenAIModel])
async def test_a_server_not_listening_is_asked_again_for_thirty_seconds(
    transport: type[FastOpenAIModel] | type[OpenAIModel],
) -> None:
    """Over loopback HTTP to a port nobody listens on, through either transport (aiohttp, the
    official SDK): six attempts, ~15-30 s of waits."""
    sleep = NoWait()
    async with transport(api_key="k", base_url="http://127.0.0.1:9/v1") as model:
        engine = Engine(model, retry=RetryPolicy(retries=3), sleep=sleep)
        [outcome] = await engine.run([Call(Request.text("hello"))])
    assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.NETWORK
    assert len(outcome.attempts) == len(REFUSED_WAITS) + 1
    assert 15.0 <= sum(sleep.waits) <= 30.0


def test_a_long_failed_question_is_named_briefly_in_the_synthesis_prompt() -> None:
    """A failed question of 5,000 characters (too long for the model) is cut to 80 in the
    synthesis prompt, so it cannot overflow the synthesis too; the answered ones stay whole."""
    long = "Why " + "very " * 1000 + "long?"
    plan = Plan(topic="t", questions=(long, "short?"))
    failed = Rejected(ServerError("context length exceeded"), 0.1, 0.0, ())
    answers = (Answer(long, failed), Answer("short?", Fulfilled(Completion("yes"), 0.1)))
    prompt = synthesis_prompt(plan, answers)
    [line] = [line for line in prompt.splitlines() if line.startswith("- Why")]
    assert len(line) == 2 + 80 and line.endswith("…")
    assert "### Q1: short?\nyes" in prompt


def test_the_output_cap_goes_in_the_field_each_api_and_server_honours() -> None:
    """OpenAI's Chat: max_completion_tokens; a --base-url server's: max_tokens (llama.cpp
    ignores the other); Gemini's: both; Responses: max_output_tokens; Anthropic: max_tokens."""
    body = {
        (provider, server, api): get_settings(
            None, None, api=api, provider=provider, max_output_tokens=64, base_url=server
        )
        .request("q")
        .body
        for provider, server, api in [
            ("openai", None, "chat"),
            ("openai", "http://127.0.0.1:8000/v1", "chat"),
            ("gemini", None, "chat"),
            ("openai", "http://127.0.0.1:8000/v1", "responses"),
            ("anthropic", None, "responses"),
        ]
    }
    caps = {k: {f: v[f] for f in CAP_FIELDS if f in v} for k, v in body.items()}
    assert list(caps.values()) == [
        {"max_completion_tokens": 64},
        {"max_tokens": 64},
        {"max_completion_tokens": 64, "max_tokens": 64},
        {"max_output_tokens": 64},
        {"max_tokens": 64},
    ]


def test_a_plan_cap_is_kept_and_the_argument_wins() -> None:
    """``[model] max_output_tokens`` caps the run; the flag's value, when given, wins."""
    plan = {"max_output_tokens": 100}
    assert get_settings(plan_model=plan).max_output_tokens == 100
    assert get_settings(plan_model=plan, max_output_tokens=8).max_output_tokens == 8


def test_max_output_tokens_caps_every_answer_on_a_compatible_server(
    simulator_process: str,
) -> None:
    """``research --max-output-tokens 5 --api chat --base-url ...``: every answer and the
    synthesis end within 5 output tokens, cut at the cap."""
    env = {
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "FANWISE_MODEL": "",
        "FANWISE_JOURNAL": "off",
    }
    args = ["research", "t", "-q", "a?", "-q", "b?", "--base-url", simulator_process]
    args += ["--api", "chat", "--max-output-tokens", "5", "--json", "--plain"]
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    for answer in document["questions"]:
        assert 0 < answer["usage"]["output_tokens"] <= 5
    assert 0 < document["synthesis"]["usage"]["output_tokens"] <= 5


def test_a_5xx_that_names_an_unsupported_parameter_is_a_bad_request() -> None:
    """llama-cpp-python answers a json_schema format with HTTP 500 and pydantic's words:
    bad_request, never retried; a plain 500 stays a retryable server error."""
    words = (
        "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n  Input "
        "should be 'text' or 'json_object' [type=literal_error, input_value='json_schema']"
    )
    error = status_error(500, words, code=None, headers={})
    assert isinstance(error, BadRequest) and not error.retryable
    assert error.code == "unsupported_parameter" and error.status_code == 500
    assert isinstance(status_error(500, "boom", code=None, headers={}), ServerError)


class JsonObjectOnly(Model):
    """A server that refuses ``json_schema`` as llama-cpp-python does and takes ``json_object``."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    @property
    def name(self) -> str:
        return "json-object-only"

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        self.sent.append(dict(request.body))
        if request.body["response_format"]["type"] == "json_schema":
            raise status_error(
                500, "response_format: Input should be 'text'", code=None, headers={}
            )
        return Completion('{"city": "Kyoto"}', Usage(10, 5))


async def test_a_server_that_refuses_json_schema_gets_json_object_once_a_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first call is refused and sent again as json_object with the schema (field and
    prompt); every later call goes as json_object at once; each answer is parsed; said at debug."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    model = JsonObjectOnly()
    engine = Engine(model, concurrency=1, retry=RetryPolicy(retries=0))
    request = get_settings(None, None, api="chat").request
    calls = [Call(request(f"q{i}"), schema=Schema.of(schema)) for i in range(3)]
    with caplog.at_level(logging.DEBUG, logger="fanwise"):
        outcomes = await engine.run(calls)
    assert [o.status for o in outcomes] == ["fulfilled"] * 3
    assert all(isinstance(o, Fulfilled) and o.value.parsed == {"city": "Kyoto"} for o in outcomes)
    kinds = [body["response_format"]["type"] for body in model.sent]
    assert kinds == ["json_schema", "json_object", "json_object", "json_object"]
    strict = Schema.of(schema).json_schema  # the strict form, as json_schema sent it
    assert model.sent[1]["response_format"]["schema"] == strict
    assert json.dumps(strict) in model.sent[1]["messages"][-1]["content"]
    assert sum("refused response_format json_schema" in r.message for r in caplog.records) == 1


async def test_a_stream_without_usage_is_usage_unknown_not_zero(simulator: Simulator) -> None:
    """A Chat stream whose server sends no usage (as llama.cpp's ignores stream_options):
    the answer's usage is unknown, its cost unknown (not $0), and the summary says so."""
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body["stream_options"] = {"include_usage": False}  # what such a server does
    async with FastOpenAIModel(api_key="k", base_url=simulator.base_url) as model:
        completion = await model.complete(Request(Endpoint.CHAT, body), on_delta=lambda _: None)
    assert completion.text and completion.usage.unknown == 1
    assert completion.usage.to_dict()["unknown"] == 1 and completion.usage.total_tokens == 0
    outcome = Fulfilled(completion, 1.0, 0.0, (Attempt(1, 0.0, 1.0),))
    assert call_cost(builtin_prices(), Call(Request(Endpoint.CHAT, body)), outcome) is None
    known = Fulfilled(Completion("ok", Usage(10, 5)), 1.0, 0.0, (Attempt(1, 0.0, 1.0),))
    stats = Stats.of([known, outcome], wall_time=1.0, usage=Usage(10, 5) + completion.usage)
    line = summary_line(stats, 0.01)
    assert "15 tokens + usage unknown for 1 call · $0.0100 + unknown" in line
