"""Whole bodies in, whole bodies out: an OpenAI batch file reaches each endpoint unchanged, and
each output line holds the server's own body, which the SDK's own types parse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from fanwise import Engine, RetryPolicy
from fanwise.batch import run_batch
from fanwise.cli import cli
from fanwise.engine import request_key
from fanwise.limits import estimate_tokens, request_tokens
from fanwise.models.base import Completion, Endpoint, Request
from fanwise.models.fast import FastOpenAIModel
from fanwise.models.openai import OpenAIModel
from fanwise.models.settings import ModelSettings
from fanwise.plans import load_plan
from fanwise.simulator import Simulator
from fanwise.workflow import Plan, run_workflow
from tests.scripted import ScriptedModel

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CONVERSATION = [
    {"role": "system", "content": "You plan trips."},
    {"role": "user", "content": "Three days in Kyoto?"},
    {"role": "assistant", "content": "Temples, gardens, food."},
    {"role": "user", "content": "Make it a plan."},
]
CHAT_STRUCTURED = {
    "model": "gpt-4o-mini",
    "messages": CONVERSATION,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "trip", "schema": SCHEMA, "strict": True},
    },
    "seed": 7,
    "temperature": 0.2,
    "max_completion_tokens": 300,
    "metadata": {"batch": "fidelity"},
}
CHAT_TOOLS = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Weather in Kyoto?"}],
    "tools": [TOOL],
    "tool_choice": "required",
    "seed": 1,
}
RESPONSES = {
    "model": "gpt-5-mini",
    "input": [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "input_text", "text": "Why is the sky blue?"}]},
    ],
    "reasoning": {"effort": "low"},
    "text": {"format": {"type": "json_schema", "name": "why", "schema": SCHEMA, "strict": True}},
}
EMBEDDINGS = {"model": "text-embedding-3-small", "input": ["Kyoto", "Osaka"]}
LINES = [
    ("chat-structured", "/v1/chat/completions", CHAT_STRUCTURED),
    ("chat-tools", "/v1/chat/completions", CHAT_TOOLS),
    ("responses", "/v1/responses", RESPONSES),
    ("embeddings", "/v1/embeddings", EMBEDDINGS),
]
APIS = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
}
PARSERS: dict[str, Any] = {
    "chat-structured": ChatCompletion,
    "chat-tools": ChatCompletion,
    "responses": Response,
    "embeddings": CreateEmbeddingResponse,
}


INSTRUCT = ("--instructions", "Be brief.")


def batch_file() -> list[str]:
    return [
        json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body})
        for cid, url, body in LINES
    ]


@pytest.mark.parametrize("transport", ["aiohttp", "sdk"])
async def test_every_line_reaches_its_endpoint_unchanged_and_comes_back_whole(
    simulator: Simulator, transport: str
) -> None:
    """Each body reaches its own url as written; each output body is the server's, SDK-parsable."""
    model: Any = (
        FastOpenAIModel(api_key="k", base_url=simulator.base_url)
        if transport == "aiohttp"
        else OpenAIModel(api_key="k", base_url=simulator.base_url)
    )
    written: list[dict[str, Any]] = []
    summary = await run_batch(
        batch_file(),
        Engine(model, concurrency=1, retry=RetryPolicy(0)),
        lambda text: written.append(json.loads(text)),
        defaults=ModelSettings(),
    )
    await model.aclose()
    assert summary.fulfilled == 4
    received = {
        json.dumps(json.loads(body), sort_keys=True): api for api, body in simulator.received
    }
    for _, url, body in LINES:
        assert received[json.dumps(body, sort_keys=True)] == APIS[url]
    sent = [json.loads(body) for body in simulator.sent]
    for record in written:
        assert set(record) == {"id", "custom_id", "response", "error", "fanwise"}
        assert record["error"] is None and record["response"]["status_code"] == 200
        assert record["response"]["request_id"].startswith("req_")
        body = record["response"]["body"]
        assert body in sent, "the server's own body, whole"
        PARSERS[record["custom_id"]].model_validate(body)
    by_id = {r["custom_id"]: r["response"]["body"] for r in written}
    plan = json.loads(by_id["chat-structured"]["choices"][0]["message"]["content"])
    assert set(plan) == {"city", "days"}
    [call] = ChatCompletion.model_validate(by_id["chat-tools"]).choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(Response.model_validate(by_id["responses"]).output_text).keys() == {
        "city",
        "days",
    }
    assert len(CreateEmbeddingResponse.model_validate(by_id["embeddings"]).data) == 2


@pytest.mark.parametrize("transport", ["aiohttp", "sdk"])
async def test_a_completion_reads_tools_refusal_finish_and_vectors(
    simulator: Simulator, transport: str
) -> None:
    """Tool calls, the finish reason and embedding vectors are read the same on both transports."""
    model: Any = (
        FastOpenAIModel(api_key="k", base_url=simulator.base_url)
        if transport == "aiohttp"
        else OpenAIModel(api_key="k", base_url=simulator.base_url)
    )
    tools = await model.complete(Request(Endpoint.CHAT, CHAT_TOOLS))
    vectors = await model.complete(Request(Endpoint.EMBEDDINGS, EMBEDDINGS))
    legacy = await model.complete(
        Request(Endpoint.COMPLETIONS, {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"})
    )
    await model.aclose()
    assert isinstance(tools, Completion) and tools.finish_reason == "tool_calls"
    assert [c.name for c in tools.tool_calls] == ["get_weather"]
    assert json.loads(tools.tool_calls[0].arguments) == {"city": "Weather in Kyoto?"}
    assert tools.body == json.loads(tools.raw)
    assert len(vectors.embeddings) == 2 and len(vectors.embeddings[0]) == 8
    assert vectors.usage.input_tokens > 0 and vectors.text == ""
    assert legacy.text.startswith("simulated answer") and legacy.finish_reason == "stop"


def test_the_cli_batch_mixes_endpoints_and_refuses_bad_lines_by_number(
    simulator_process: str, tmp_path: Path
) -> None:
    """One file, three endpoints, live; a duplicate custom_id on line 2 is refused by number."""
    source = tmp_path / "in.jsonl"
    lines = batch_file()
    lines.insert(1, lines[0])  # line 2 repeats line 1's custom_id
    get = json.dumps({"custom_id": "get", "method": "GET", "url": "/v1/responses"})
    source.write_bytes(
        "\n".join(lines).encode() + b'\n{"custom_id": "x\xff"}\n' + get.encode() + b"\n"
    )
    out = tmp_path / "out.jsonl"
    env = {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": simulator_process}
    result = CliRunner().invoke(
        cli, ["batch", str(source), "-o", str(out), "--quiet", "--no-adapt"], env=env
    )
    assert result.exit_code == 4, result.output
    assert f"{source}:2: duplicate custom_id 'chat-structured'" in result.stderr
    assert f"{source}:6: not UTF-8 text (byte 0xff" in result.stderr
    assert f'{source}:7: method must be "POST"' in result.stderr
    records = [json.loads(x) for x in out.read_text().splitlines()]
    ok = {r["custom_id"]: r for r in records if r["response"]}
    assert set(ok) == {"chat-structured", "chat-tools", "responses", "embeddings"}
    ChatCompletion.model_validate(ok["chat-tools"]["response"]["body"])
    shown = CliRunner().invoke(cli, ["show", "1", "--jsonl"])
    again = {r["custom_id"]: r for r in map(json.loads, shown.output.splitlines())}
    for custom_id, record in ok.items():
        assert again[custom_id]["response"] == record["response"], "whole, from the journal"


def test_an_empty_batch_file_is_refused_before_any_request(tmp_path: Path) -> None:
    """A file of blank lines exits 2 with "no requests in FILE", and sends nothing."""
    source = tmp_path / "empty.jsonl"
    source.write_text("\n  \n")
    result = CliRunner().invoke(cli, ["batch", str(source), "--provider", "offline"])
    assert result.exit_code == 2
    assert f"no requests in {source}" in result.output and "Traceback" not in result.output


def test_plain_lines_take_the_instructions_flag(tmp_path: Path) -> None:
    """--instructions is the system text of plain lines; a line's own "system" wins."""
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "Hi Kyoto", "custom_id": "a"}\n')
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli,
        ["batch", str(source), "-o", str(out), "--provider", "offline", "--quiet", *INSTRUCT],
    )
    assert result.exit_code == 0, result.output
    [record] = [json.loads(x) for x in out.read_text().splitlines()]
    Response.model_validate(record["response"]["body"])


async def test_a_plans_bodies_reach_every_call(tmp_path: Path) -> None:
    """[research] body, a question's own body and [synthesis] body reach the API as written."""
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(
        'topic = "Kyoto"\n'
        "[research]\n"
        'body = { tools = [{ type = "web_search" }], seed = 1 }\n'
        'questions = ["What to see?", { text = "What to eat?", body = { seed = 2 } }]\n'
        "[synthesis]\n"
        'body = { text = { verbosity = "low" } }\n'
    )
    loaded = load_plan(plan_file)
    model = ScriptedModel()
    await run_workflow(loaded.plan, Engine(model))
    see, eat, synthesis = model.history
    assert see.body["tools"] == [{"type": "web_search"}] and see.body["seed"] == 1
    assert eat.body["seed"] == 2 and eat.body["tools"] == [{"type": "web_search"}]
    assert synthesis.body["text"] == {"verbosity": "low"} and "tools" not in synthesis.body


async def test_the_python_api_takes_whole_requests_as_questions() -> None:
    """A Request in a plan goes out as it is, with only the missing model added."""
    asked = Request(Endpoint.CHAT, {"messages": [{"role": "user", "content": "Hi?"}], "seed": 3})
    model = ScriptedModel()
    result = await run_workflow(
        Plan("t", (asked, "plain?")), Engine(model), settings=ModelSettings(model="m")
    )
    assert model.history[0] == Request(Endpoint.CHAT, {**asked.body, "model": "m"})
    assert [a.question for a in result.answers] == ["Hi?", "plain?"]


def test_the_limiters_estimate_reads_the_body() -> None:
    """System and user text of a chat body, plus max_completion_tokens, make the estimate."""
    system, user = "s" * 400, "u" * 400
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    asked = Request(
        Endpoint.CHAT, {"model": "m", "messages": messages, "max_completion_tokens": 50}
    )
    assert request_tokens(asked) == estimate_tokens(system + user) + 50


def test_the_key_is_a_digest_of_endpoint_and_canonical_body() -> None:
    """Field order does not change the key; the endpoint and any field of the body do."""
    body = {"model": "m", "input": "x", "seed": 1}
    same = Request(Endpoint.RESPONSES, dict(reversed(body.items())))
    assert request_key(Request(Endpoint.RESPONSES, body)) == request_key(same)
    assert request_key(Request(Endpoint.EMBEDDINGS, body)) != request_key(same)
    assert request_key(Request(Endpoint.RESPONSES, {**body, "seed": 2})) != request_key(same)
