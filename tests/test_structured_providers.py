"""Structured outputs on Anthropic and Gemini: the forms sent, the answers parsed and repaired,
and what an API cannot do refused before the first request."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanwise import Call, Engine, Fulfilled, Request
from fanwise.models.anthropic import AnthropicModel
from fanwise.models.base import Endpoint
from fanwise.models.gemini import GeminiModel
from fanwise.retry import NoWait, RetryPolicy
from fanwise.schemas import Schema, SchemaError, body_schema, with_schema
from fanwise.schemas_anthropic import has_output_format, output_schema
from fanwise.simulator import Simulator
from tests.conftest import SimulatorProcess
from tests.processes import run_fanwise

ANSWER = {
    "title": "Answer",
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "confidence": {"type": "integer", "minimum": 0, "maximum": 10},
    },
    "required": ["summary", "confidence"],
}
NO_KEYS = {"OPENAI_API_KEY": None, "ANTHROPIC_API_KEY": None, "GEMINI_API_KEY": None,
           "GOOGLE_API_KEY": None, "OPENAI_BASE_URL": None, "FANWISE_MODEL": None}  # fmt: skip


def messages(prompt: str, model: str, **kwargs: Any) -> Request:
    return Request.text(prompt, model, endpoint=Endpoint.MESSAGES, reasoning_effort=None, **kwargs)


def test_claude_4_5_gets_output_config_and_older_models_a_forced_tool() -> None:
    """The GA form where the model has it (bounds moved to words), else one forced tool."""
    schema = Schema.of(ANSWER)
    body = with_schema("messages", messages("Kyoto?", "claude-sonnet-4-5").body, schema)
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema" and "tools" not in body
    confidence = fmt["schema"]["properties"]["confidence"]
    assert "minimum" not in confidence and "minimum: 0" in confidence["description"]
    old = with_schema("messages", messages("Kyoto?", "claude-3-5-haiku-latest").body, schema)
    assert old["tool_choice"] == {"type": "tool", "name": "Answer"}
    assert old["tools"][0]["input_schema"] == dict(schema.json_schema)
    assert "output_config" not in old
    assert body_schema("messages", old) is not None and body_schema("messages", body) is not None
    assert has_output_format("claude-opus-4-1") and not has_output_format("claude-sonnet-4-0")
    assert output_schema(schema)["additionalProperties"] is False


def test_a_forced_tool_with_extended_thinking_is_refused() -> None:
    """Anthropic refuses a forced tool with thinking: SchemaError, before anything is sent."""
    request = Request.text(
        "Kyoto?", "claude-3-7-sonnet-latest", endpoint=Endpoint.MESSAGES, reasoning_effort="low"
    )
    with pytest.raises(SchemaError, match="extended thinking"):
        Call(request, schema=Schema.of(ANSWER))


def test_completions_have_no_structured_outputs() -> None:
    """A schema asked of the completions API is a SchemaError that names the APIs that have it."""
    request = Request.text("Kyoto?", "gpt-5", endpoint=Endpoint.COMPLETIONS)
    with pytest.raises(SchemaError, match="no structured outputs"):
        Call(request, schema=Schema.of(ANSWER))


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-3-5-haiku-latest"])
async def test_claude_answers_parsed_and_a_broken_answer_repaired(
    simulator: Simulator, model: str
) -> None:
    """Both forms: the first answer breaks the schema, the repaired request is answered and
    parsed; a forced tool's input becomes the answer's text."""
    simulator.script("Kyoto", ["schema", "ok"])
    call = Call(messages("Kyoto sights?", model), schema=Schema.of(ANSWER))
    async with AnthropicModel(api_key="k", base_url=simulator.url, environ={}) as claude:
        engine = Engine(claude, retry=RetryPolicy(retries=2), sleep=NoWait())
        [outcome] = await engine.run([call])
    assert isinstance(outcome, Fulfilled), outcome
    assert len(outcome.attempts) == 2
    parsed = outcome.value.parsed
    assert set(parsed) == {"summary", "confidence"}
    assert json.loads(outcome.value.text) == parsed
    repaired = json.loads(simulator.received[-1][1])["messages"]
    assert "did not match the required JSON schema" in repaired[-1]["content"]


async def test_gemini_answers_parsed_and_a_broken_answer_repaired(simulator: Simulator) -> None:
    """Gemini's compatible endpoint: response_format, parsed, and repaired after a break."""
    simulator.script("Kyoto", ["schema", "ok"])
    request = Request.text("Kyoto sights?", "gemini-2.5-flash", endpoint=Endpoint.CHAT,
                           reasoning_effort=None)  # fmt: skip
    call = Call(request, schema=Schema.of(ANSWER))
    assert call.request.body["response_format"]["type"] == "json_schema"
    base = simulator.url + "/v1beta/openai"
    async with GeminiModel(api_key="g", base_url=base, environ={}) as gemini:
        engine = Engine(gemini, retry=RetryPolicy(retries=2), sleep=NoWait())
        [outcome] = await engine.run([call])
    assert isinstance(outcome, Fulfilled) and len(outcome.attempts) == 2
    assert set(outcome.value.parsed) == {"summary", "confidence"}


def _schema_file(tmp_path: Path) -> str:
    path = tmp_path / "answer.schema.json"
    path.write_text(json.dumps(ANSWER), encoding="utf-8")
    return str(path)


def _requests(sim: SimulatorProcess) -> int:
    with urllib.request.urlopen(sim.url + "/_stats") as response:
        stats: dict[str, Any] = json.loads(response.read())
    return int(stats["requests"])


@pytest.mark.parametrize(
    ("provider", "model", "base"),
    [
        ("anthropic", "claude-sonnet-4-5", ""),
        ("anthropic", "claude-3-5-haiku-latest", ""),
        ("gemini", "gemini-2.5-flash", "/v1beta/openai"),
    ],
)
def test_research_with_both_schemas_returns_parsed(
    spawn_simulator: Callable[..., SimulatorProcess],
    tmp_path: Path,
    provider: str,
    model: str,
    base: str,
) -> None:
    """--schema and --synthesis-schema with anthropic (both forms) and gemini: every answer
    and the synthesis come back parsed."""
    sim = spawn_simulator()
    schema = _schema_file(tmp_path)
    key = "ANTHROPIC_API_KEY" if provider == "anthropic" else "GEMINI_API_KEY"
    done = run_fanwise(
        "research", "Kyoto", "-q", "Which temples?", "-q", "Which trains?",
        "--provider", provider, "--base-url", sim.url + base, "--model", model,
        "--schema", schema, "--synthesis-schema", schema, "--json", "--no-journal",
        env={**NO_KEYS, key: "test"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for question in result["questions"]:
        assert set(question["parsed"]) == {"summary", "confidence"}, question
    assert set(result["synthesis"]["parsed"]) == {"summary", "confidence"}


STAGES = """
title = "two stages"
[[stage]]
name = "facts"
prompt = "What are the top attractions to visit in Kyoto?"
[[stage]]
name = "plan"
prompt = "Turn these into a plan: {facts}"
schema = "answer.schema.json"
"""


@pytest.mark.parametrize("command", ["research", "stages"])
def test_an_unsupported_combination_exits_2_before_any_request(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path, command: str
) -> None:
    """A Claude 3.7 schema needs a forced tool, which Anthropic refuses with extended thinking:
    exit 2 and one line, for the synthesis or a later stage, and the simulator counts no
    request (none of the research or the earlier stage was sent and paid for)."""
    sim = spawn_simulator()
    schema = _schema_file(tmp_path)
    if command == "research":
        what = ["research", "Kyoto", "-q", "Which temples?", "--synthesis-schema", schema]
    else:
        (tmp_path / "plan.toml").write_text(STAGES, encoding="utf-8")
        what = ["run", str(tmp_path / "plan.toml")]
    done = run_fanwise(
        *what, "--provider", "anthropic", "--base-url", sim.url, "--no-journal",
        "--model", "claude-3-7-sonnet-latest", "--reasoning-effort", "low",
        env={**NO_KEYS, "ANTHROPIC_API_KEY": "test"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "structured outputs" in done.stderr and "Traceback" not in done.stderr
    assert _requests(sim) == 0


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-3-5-haiku-latest"])
def test_batch_validate_repairs_an_anthropic_line(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path, model: str
) -> None:
    """`fanwise batch --validate` on Messages lines that ask for a schema their own way
    (output_config.format, or a forced tool): a broken answer is repaired, then valid."""
    sim = spawn_simulator()
    script = json.dumps([{"match": "Kyoto", "faults": ["schema"]}]).encode()
    urllib.request.urlopen(urllib.request.Request(sim.url + "/_control/script", data=script))
    body = messages("Kyoto sights?", model).body
    body = with_schema("messages", body, Schema.of(ANSWER))
    line = {"custom_id": "k", "method": "POST", "url": "/v1/messages", "body": body}
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps(line) + "\n", encoding="utf-8")
    done = run_fanwise(
        "batch", str(source), "-o", str(out), "--validate", "--provider", "anthropic",
        "--base-url", sim.url, "--no-journal", "--quiet",
        env={**NO_KEYS, "ANTHROPIC_API_KEY": "test"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [result] = [json.loads(x) for x in out.read_text().splitlines()]
    assert result["fanwise"]["attempts"] == 2 and result["response"]["status_code"] == 200
    assert _requests(sim) == 2


async def test_a_server_that_refuses_output_config_gets_the_forced_tool() -> None:
    """A 400 naming output_config: the call goes again as a forced tool whose input is the
    answer, and the next call for that model goes so at once (one request)."""
    from aiohttp import web

    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        if "output_config" in body:
            error = {"type": "invalid_request_error",
                     "message": "output_config: Extra inputs are not permitted"}  # fmt: skip
            return web.json_response({"type": "error", "error": error}, status=400)
        tool = {"type": "tool_use", "id": "toolu_1", "name": body["tool_choice"]["name"],
                "input": {"summary": "temples", "confidence": 7}}  # fmt: skip
        return web.json_response({"id": "msg_1", "type": "message", "role": "assistant",
                                  "model": body["model"], "content": [tool],
                                  "stop_reason": "tool_use", "usage": {}})  # fmt: skip

    app = web.Application()
    app.router.add_post("/v1/messages", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with AnthropicModel(api_key="k", base_url=f"http://127.0.0.1:{port}") as claude:
            engine = Engine(claude, retry=RetryPolicy(retries=0), sleep=NoWait())
            calls = [Call(messages_request(q), schema=Schema.of(ANSWER)) for q in ("a", "b")]
            first = await engine.run(calls[:1])
            second = await engine.run(calls[1:])
    finally:
        await runner.cleanup()
    for [outcome] in (first, second):
        assert isinstance(outcome, Fulfilled), outcome
        assert outcome.value.parsed == {"summary": "temples", "confidence": 7}
    assert ["output_config" in body for body in seen] == [True, False, False]
    assert seen[1]["tool_choice"] == {"type": "tool", "name": "structured_output"}


def messages_request(prompt: str) -> Request:
    return messages(prompt, "claude-sonnet-4-5")
