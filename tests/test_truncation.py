"""An answer cut at its output-token cap is flagged ``truncated``, everywhere it is shown; a
structured one is not "repaired" by asking again at the same cap: it fails once, ``truncated``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanwise import Call, Engine, ErrorKind, Fulfilled, Plan, Rejected, Request, run_workflow
from fanwise.models.anthropic import AnthropicModel
from fanwise.models.base import Completion, Endpoint, Model, Usage
from fanwise.models.fast import FastOpenAIModel
from fanwise.models.gemini import GeminiModel
from fanwise.models.settings import ModelSettings
from fanwise.outcome import InvalidResponse, Truncated
from fanwise.retry import NoWait
from fanwise.schemas import Schema
from fanwise.simulator import Simulator
from fanwise.stages import Stage, Workflow
from fanwise.stages.runner import run_stages
from fanwise.structured import accept
from fanwise.ui.documents import to_markdown
from fanwise.ui.plain import summary_line
from tests.conftest import SimulatorProcess
from tests.processes import run_fanwise

PROMPT = "What are the top attractions to visit in Kyoto?"
CAP = 8
ANSWER = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "confidence": {"type": "integer"}},
    "required": ["summary", "confidence"],
}
READERS = {
    "responses": ("max_output_tokens", "max_output_tokens"),
    "chat": ("max_completion_tokens", "length"),
    "anthropic": ("max_tokens", "max_tokens"),
    "gemini": ("max_completion_tokens", "length"),
}


def model_for(sim: Simulator, reader: str) -> Model:
    if reader == "anthropic":
        return AnthropicModel(api_key="test", base_url=sim.url)
    if reader == "gemini":
        return GeminiModel(api_key="g", base_url=sim.url + "/v1beta/openai", environ={})
    return FastOpenAIModel(api_key="test", base_url=sim.base_url, environ={})


def capped(reader: str, cap: int = CAP) -> Request:
    """A request whose body caps the answer at ``cap`` tokens, in the field its API reads."""
    field = READERS[reader][0]
    if reader == "anthropic":
        request = Request.text(PROMPT, "claude-sonnet-4-5", endpoint=Endpoint.MESSAGES)
    elif reader == "responses":
        request = Request.text(PROMPT)
    else:
        request = Request.text(PROMPT, "gemini-2.5-flash", endpoint=Endpoint.CHAT)
    body = {k: v for k, v in request.body.items() if not k.startswith("max_")}
    return Request(request.endpoint, {**body, field: cap})


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("reader", READERS)
async def test_an_answer_cut_at_its_cap_is_flagged(
    simulator: Simulator, reader: str, stream: bool
) -> None:
    """Cut at its cap, an answer is fulfilled with ``truncated`` set (and in its dict)."""
    async with model_for(simulator, reader) as model:
        engine = Engine(model, sleep=NoWait())
        deltas: list[str] = []
        sink = deltas.append if stream else None
        outcome = await engine.complete(Call(capped(reader)), on_delta=sink)
    assert isinstance(outcome, Fulfilled), outcome
    completion = outcome.value
    assert completion.truncated and completion.finish_reason == READERS[reader][1]
    assert completion.to_dict()["truncated"] is True
    assert Completion.from_dict(completion.to_dict()).truncated, "a journaled answer keeps it"


@pytest.mark.parametrize("reader", READERS)
async def test_a_structured_answer_cut_at_its_cap_fails_once(
    simulator: Simulator, reader: str
) -> None:
    """A JSON answer its cap cut short is ``truncated`` after one attempt: no repair, no retry."""
    async with model_for(simulator, reader) as model:
        engine = Engine(model, sleep=NoWait())
        [outcome] = await engine.run([Call(capped(reader), schema=Schema.of(ANSWER))])
    assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.TRUNCATED
    assert f"answer cut at the {CAP}-token cap" in outcome.message
    assert "raise max_output_tokens" in outcome.message
    assert len(outcome.attempts) == 1 and simulator.stats().requests == 1
    assert outcome.attempts[0].error is not None
    assert outcome.attempts[0].error["usage"]["output_tokens"] > 0, "its tokens are counted"


@pytest.mark.parametrize("reason", ["max_tokens", "length", "max_output_tokens"])
def test_a_cut_answer_that_breaks_its_schema_is_truncated_not_invalid(reason: str) -> None:
    """Whatever API's word for the cap (Anthropic's max_tokens too), the break is final."""
    cut = Completion(text='{"summary": "Temples at da', finish_reason=reason)
    with pytest.raises(Truncated, match="the 64-token cap"):
        accept(cut, Schema.of(ANSWER), Usage(), 64)
    whole = Completion(text='{"summary": "ok", "confidence": 3}', finish_reason=reason)
    assert accept(whole, Schema.of(ANSWER), Usage(), 64).parsed is not None, "JSON that parses"
    broken = Completion(text='{"summary": "ok"}', finish_reason="stop")
    with pytest.raises(InvalidResponse):
        accept(broken, Schema.of(ANSWER), Usage(), 64)


async def test_an_answer_within_its_cap_is_not_truncated(simulator: Simulator) -> None:
    """An answer that ends on its own is not flagged; its dict carries no ``truncated``."""
    async with model_for(simulator, "chat") as model:
        [outcome] = await Engine(model, sleep=NoWait()).run([Call(capped("chat", 4000))])
    assert isinstance(outcome, Fulfilled) and not outcome.value.truncated
    assert "truncated" not in outcome.value.to_dict()


async def test_a_workflow_shows_its_cut_answers(simulator: Simulator) -> None:
    """--json (the result's dict) flags each cut answer and counts them; the summary says so."""
    plan = Plan("Kyoto", ("Sights?", "Food?"), title="travel guide")
    async with model_for(simulator, "chat") as model:
        settings = ModelSettings(endpoint=Endpoint.CHAT, max_output_tokens=CAP)
        result = await run_workflow(plan, Engine(model, sleep=NoWait()), settings=settings)
    data: dict[str, Any] = result.to_dict()
    assert [q["truncated"] for q in data["questions"]] == [True, True]
    assert data["stats"]["truncated"] == 2
    assert data["synthesis"]["truncated"] is True
    assert "2 fulfilled (2 cut at their token cap)" in summary_line(result.stats)


def test_a_batch_flags_cut_lines_in_its_output_and_summary(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """A batch line cut at its cap says ``"truncated": true`` in its fanwise figures; the
    plain line and the summary say it was cut."""
    sim = spawn_simulator()
    messages = [{"role": "user", "content": PROMPT}]
    lines = [
        {"custom_id": "cut", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-5", "messages": messages, "max_completion_tokens": CAP}},
        {"custom_id": "whole", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-5", "messages": messages}},
    ]  # fmt: skip
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result: subprocess.CompletedProcess[str] = run_fanwise(
        "batch", str(source), "--plain", "--journal", str(tmp_path / "j.db"),
        "--provider", "openai", "--base-url", sim.base_url, env={"OPENAI_API_KEY": "test"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = {record["custom_id"]: record for record in map(json.loads, result.stdout.splitlines())}
    assert out["cut"]["fanwise"]["truncated"] is True
    assert out["whole"]["fanwise"]["truncated"] is False
    assert "✅ Answered: cut" in result.stderr and "✂ cut at its token cap" in result.stderr
    assert "(1 cut at their token cap)" in result.stderr


async def test_a_staged_workflow_shows_its_cut_answers(simulator: Simulator) -> None:
    """A staged workflow's --json flags each cut call and counts them in its stats."""
    workflow = Workflow((Stage("guide", prompt="Write a guide to Lyon."),), topic="Lyon")
    async with model_for(simulator, "chat") as model:
        settings = ModelSettings(endpoint=Endpoint.CHAT, max_output_tokens=CAP)
        result = await run_stages(workflow, Engine(model, sleep=NoWait()), settings=settings)
    data = result.to_dict()
    assert data["stages"][0]["calls"][0]["truncated"] is True, data["stages"][0]
    assert data["stats"]["truncated"] == 1


async def test_the_answers_shown_without_a_synthesis_say_which_were_cut(
    simulator: Simulator,
) -> None:
    """When the synthesis fails, the Markdown of the answers marks each one its cap cut."""
    simulator.script("simulated answer to", ["400"])
    plan = Plan("Kyoto", ("Sights?",), title="travel guide")
    async with model_for(simulator, "chat") as model:
        settings = ModelSettings(endpoint=Endpoint.CHAT, max_output_tokens=CAP)
        result = await run_workflow(plan, Engine(model, sleep=NoWait()), settings=settings)
    assert result.text is None
    assert "_(cut at its token cap)_" in to_markdown(result)


def test_the_cli_names_the_flag_that_raises_the_cap(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """A structured answer cut at its cap: the CLI's lines say --max-output-tokens, not the
    library's setting name."""
    sim = spawn_simulator()
    schema = tmp_path / "s.json"
    schema.write_text(
        '{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], '
        '"additionalProperties": false}'
    )
    done = run_fanwise(
        "research", "T", "-q", "a question", "--base-url", sim.base_url, "--schema", str(schema),
        "--max-output-tokens", "3", "--no-journal", "--no-stream", "--plain",
        env={"OPENAI_API_KEY": "test"},
    )  # fmt: skip
    assert "raise --max-output-tokens" in done.stderr and "raise --max-output-tokens" in done.stdout
    assert "raise max_output_tokens" not in done.stderr + done.stdout
