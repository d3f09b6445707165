"""Gemini's own API against the simulator: generateContent (whole and streamed), embedContent,
structured outputs, Google's 429 bodies, and Batch Mode (inline and file input, and the CLI)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fanwise import Call, Engine, Fulfilled, Request
from fanwise.batchapi.gemini import GeminiBatchClient
from fanwise.batchapi.results import read_files
from fanwise.cli import cli
from fanwise.jsonspans import member_text
from fanwise.models.base import Endpoint
from fanwise.models.gemini import GeminiModel
from fanwise.outcome import AuthError, RateLimited
from fanwise.retry import NoWait, RetryPolicy
from fanwise.schemas import Schema
from fanwise.simulator import Simulator
from tests.conftest import SimulatorProcess

MODEL = "gemini-2.5-flash"
URL = f"/v1beta/models/{MODEL}:generateContent"


def native(prompt: str, **extra: Any) -> Request:
    body = {"model": MODEL, "contents": [{"role": "user", "parts": [{"text": prompt}]}], **extra}
    return Request(Endpoint.GENERATE, body)


def gemini(sim: Simulator) -> GeminiModel:
    return GeminiModel(api_key="g", base_url=sim.url + "/v1beta/openai", environ={})


async def test_generate_content_whole_and_streamed(simulator: Simulator) -> None:
    """The answer is Google's whole GenerateContentResponse; a stream's deltas add up to the
    same text, with its usage and finish reason."""
    request = native("Kyoto temples?", generationConfig={"maxOutputTokens": 400})
    async with gemini(simulator) as model:
        whole = await model.complete(request)
        deltas: list[str] = []
        streamed = await model.complete(request, on_delta=deltas.append)
    assert whole.endpoint is Endpoint.GENERATE and whole.text.startswith("simulated answer")
    assert set(json.loads(whole.raw)) >= {"candidates", "usageMetadata", "modelVersion"}
    sent = json.loads(simulator.received[0][1])
    assert sent["max_completion_tokens"] == 400  # the brain read generationConfig
    assert "".join(deltas) == streamed.text == whole.text
    assert streamed.usage == whole.usage and whole.usage.output_tokens > 0
    assert streamed.finish_reason == "stop"


async def test_embed_content_returns_the_vector(simulator: Simulator) -> None:
    """embedContent: the EmbedContentResponse's values are the completion's embedding."""
    body = {"model": "gemini-embedding-001", "content": {"parts": [{"text": "Kyoto"}]}}
    request = Request(Endpoint.EMBED_CONTENT, body)
    async with gemini(simulator) as model:
        completion = await model.complete(request)
    assert len(completion.embeddings) == 1 and len(completion.embeddings[0]) == 8


async def test_a_schema_goes_as_response_json_schema_and_is_repaired(simulator: Simulator) -> None:
    """A schema on generateContent is generationConfig.responseJsonSchema; a broken answer is
    repaired (the model's answer and the error appended as turns) and parsed."""
    schema = Schema.of({"type": "object", "properties": {"city": {"type": "string"}}})
    call = Call(native("Kyoto trip?"), schema=schema)
    config = call.request.body["generationConfig"]
    assert config["responseMimeType"] == "application/json" and "responseJsonSchema" in config
    simulator.script("Kyoto", ["schema", "ok"])
    async with gemini(simulator) as model:
        engine = Engine(model, retry=RetryPolicy(retries=2), sleep=NoWait())
        [outcome] = await engine.run([call])
    assert isinstance(outcome, Fulfilled) and len(outcome.attempts) == 2
    assert set(outcome.value.parsed) == {"city"}
    turns = json.loads(simulator.received[-1][1])["messages"]
    assert turns[-2]["role"] == "assistant" and "did not match" in turns[-1]["content"]


async def test_a_429_waits_its_retry_info_and_a_per_day_quota_is_final(
    simulator: Simulator,
) -> None:
    """Google's error object on the native API: RetryInfo.retryDelay is the wait; the per-day
    QuotaFailure (the spend fault) is auth, never retried."""
    simulator.script("Kyoto", ["429", "spend"], retry_after=1.5)
    async with gemini(simulator) as model:
        with pytest.raises(RateLimited) as limited:
            await model.complete(native("Kyoto?"))
        with pytest.raises(AuthError):
            await model.complete(native("Kyoto?"))
    assert limited.value.retry_after == 1.5
    body = json.loads(limited.value.body or b"")
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert not any(k.startswith("x-ratelimit") for k in limited.value.headers)


@pytest.mark.parametrize("inline_max", [20 * 1024 * 1024, 0], ids=["inline", "file"])
async def test_batch_mode_answers_every_line_with_the_providers_bytes(
    simulator: Simulator, inline_max: int
) -> None:
    """Batch Mode with inline requests and with a JSONL file: every line answered, each result
    the provider's key and the response's bytes as the batch gave them."""
    sim = simulator
    client = GeminiBatchClient(api_key="g", base_url=sim.url + "/v1beta", inline_max=inline_max)
    lines = [
        json.dumps({"custom_id": f"{i}:k{i}", "method": "POST", "url": URL,
                    "body": native(f"q {i}").body}).encode()
        for i in range(3)
    ]  # fmt: skip
    file_id = await client.upload("in.jsonl", b"\n".join(lines) + b"\n")
    state = await client.create(file_id, URL)
    assert state.id.startswith("batches/") and (await client.find(file_id)) is not None
    while not state.final:
        await asyncio.sleep(0.05)
        state = await client.retrieve(state.id)
    assert state.status == "completed" and state.completed == 3
    output = await client.download(state.output_file_id or "")
    results = read_files([output], [(i, f"k{i}") for i in range(3)], Endpoint.GENERATE)
    assert sorted(results) == [0, 1, 2]
    for line in output.decode().splitlines():
        body = member_text(line, "response", "body")
        assert body is not None and json.loads(body)["candidates"][0]["content"]["parts"]


def test_fanwise_batch_on_gemini_batch_mode(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """`fanwise batch FILE --engine batch --provider gemini`: prompts and native lines go to
    Batch Mode, every line answered, each body the provider's whole; live, the native line is
    answered by generateContent."""
    sim = spawn_simulator()
    source = tmp_path / "in.jsonl"
    contents = [{"role": "user", "parts": [{"text": "Kyoto?"}]}]
    native_line = {"custom_id": "n1", "method": "POST", "url": URL, "body": {"contents": contents}}
    plain = [{"prompt": f"q {i}", "custom_id": f"p{i}"} for i in range(3)]
    source.write_text("\n".join(json.dumps(x) for x in [native_line, *plain]) + "\n")
    env = {"GEMINI_API_KEY": "test", "OPENAI_API_KEY": "", "FANWISE_MODEL": ""}
    target = ["--provider", "gemini", "--base-url", sim.url + "/v1beta/openai", "--no-journal"]
    for engine in ("batch", "live"):
        out = tmp_path / f"{engine}.jsonl"
        args = ["batch", str(source), "-o", str(out), "--quiet", "--engine", engine,
                "--batch-poll", "0.05", *target]  # fmt: skip
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        lines = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
        assert sorted(lines) == ["n1", "p0", "p1", "p2"]
        body = lines["n1"]["response"]["body"]
        assert body["candidates"][0]["content"]["parts"][0]["text"].startswith("simulated")
        assert body["usageMetadata"]["promptTokenCount"] > 0
        if engine == "batch":
            assert all("candidates" in r["response"]["body"] for r in lines.values())
            assert lines["n1"]["fanwise"]["cost_usd"] > 0
