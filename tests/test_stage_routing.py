"""A stage's own model is routed as a research question's is: one decision, ``for_model``."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fanwise.models.base import Endpoint
from fanwise.models.settings import ModelSettings
from fanwise.stages import Stage, Workflow
from fanwise.stages.runner import stage_request
from tests.conftest import SimulatorProcess
from tests.processes import run_fanwise

SETTINGS = ModelSettings(model="gpt-5")


def test_a_stage_request_goes_to_its_models_endpoint() -> None:
    """claude-* → Anthropic's messages, gemini-* → chat (no 'minimal'), else the run's API."""
    cases = {
        "claude-sonnet-4-5": Endpoint.MESSAGES,
        "gemini-2.5-pro": Endpoint.CHAT,
        "gpt-5-mini": Endpoint.RESPONSES,
    }
    for model, endpoint in cases.items():
        stage = Stage("ask", prompt="Which temples?", model=model)
        request = stage_request(SETTINGS, stage, "Which temples?")
        assert (request.endpoint, request.model) == (endpoint, model)
    gemini = stage_request(SETTINGS, Stage("ask", prompt="p", model="gemini-2.5-pro"), "p")
    assert "reasoning_effort" not in gemini.body
    claude = stage_request(SETTINGS, Stage("ask", prompt="p", model="claude-sonnet-4-5"), "p")
    assert claude.body["max_tokens"] > 0
    plain = stage_request(SETTINGS, Stage("ask", prompt="p"), "p")
    assert (plain.endpoint, plain.model) == (Endpoint.RESPONSES, "gpt-5")


def test_a_vote_asks_each_model_on_its_own_endpoint() -> None:
    """A vote's ``models`` go through the same routing, one model per sample."""
    stage = Stage("pick", prompt="p", models=("gpt-5", "claude-sonnet-4-5"))
    endpoints = [stage_request(SETTINGS, stage, "p", m).endpoint for m in stage.models]
    assert endpoints == [Endpoint.RESPONSES, Endpoint.MESSAGES]


def test_a_workflow_names_the_models_its_stages_ask() -> None:
    """The models a run needs besides its own, for the CLI to route each provider."""
    workflow = Workflow(
        (
            Stage("a", prompt="p", model="claude-sonnet-4-5"),
            Stage("b", prompt="{a}", models=("gpt-5", "claude-sonnet-4-5")),
        )
    )
    assert workflow.models == ("claude-sonnet-4-5", "gpt-5")


def test_a_claude_stage_reaches_the_messages_api(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """`fanwise run` with a claude-* stage: that stage's call goes to /v1/messages, the other
    to the Responses API, both answered, against the simulator's two APIs."""
    sim = spawn_simulator()
    plan = tmp_path / "plan.toml"
    plan.write_text(
        'title = "guide"\ntopic = "Kyoto"\n'
        '[[stage]]\nname = "facts"\nprompt = "Three facts about Kyoto."\n'
        'model = "claude-sonnet-4-5"\n'
        '[[stage]]\nname = "guide"\nprompt = "A guide from: {facts}"\n',
        encoding="utf-8",
    )
    done = run_fanwise(
        "run", str(plan), "--json", "--no-journal", "--model", "gpt-5",
        env={
            "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k", "OPENAI_BASE_URL": sim.base_url,
            "ANTHROPIC_BASE_URL": sim.url, "FANWISE_MODEL": None,
        },
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    assert [s["status"] for s in document["stages"]] == ["fulfilled", "fulfilled"]
    with urllib.request.urlopen(f"{sim.url}/_stats", timeout=5) as response:
        by_endpoint = json.load(response)["by_endpoint"]
    assert by_endpoint == {"/v1/messages": 1, "/v1/responses": 1}
