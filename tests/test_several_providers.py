"""Several providers in one run: per-question models, one question asked of several models, and
each provider under its own limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from fanwise import Call, Engine, Fulfilled, Request
from fanwise.limits import Limiter, Permit
from fanwise.models.anthropic import AnthropicModel
from fanwise.models.base import Endpoint, Model
from fanwise.models.fast import FastOpenAIModel
from fanwise.models.router import ProviderRouter
from fanwise.models.settings import ModelSettings
from fanwise.plans import PlanError, load_plan
from fanwise.simulator import Simulator
from fanwise.workflow import Plan
from tests.conftest import SimulatorProcess
from tests.processes import run_fanwise

MODELS = ("gpt-5", "claude-sonnet-4-5", "gemini-2.5-pro")


class SpyLimiter:
    """Records the headers each attempt's permit is given."""

    def __init__(self) -> None:
        self.headers: list[Mapping[str, str]] = []

    @asynccontextmanager
    async def permit(self, estimated_tokens: int) -> AsyncIterator[Permit]:
        yield self

    def record(self, *, tokens: int, headers: Mapping[str, str]) -> None:
        self.headers.append(headers)


def test_a_question_asked_of_several_models_is_one_call_each_on_its_endpoint() -> None:
    """models = [...]: one call per model, each on its provider's endpoint, labelled by model."""
    plan = Plan("Kyoto", ("Which temples?", "Which trains?"), question_models=(MODELS, ()))
    calls = plan.research_calls(ModelSettings(model="gpt-5"))
    assert [c.request.endpoint for c in calls] == [
        Endpoint.RESPONSES,
        Endpoint.MESSAGES,
        Endpoint.CHAT,
        Endpoint.RESPONSES,
    ]
    assert [c.label for c in calls] == [
        "Which temples? [gpt-5]",
        "Which temples? [claude-sonnet-4-5]",
        "Which temples? [gemini-2.5-pro]",
        "Which trains?",
    ]
    assert [c.request.model for c in calls] == [*MODELS, "gpt-5"]
    assert "reasoning_effort" not in calls[2].request.body, "Gemini gets no 'minimal'"
    assert calls[1].request.body["max_tokens"] > 0


def test_a_plan_names_each_questions_models(tmp_path: Path) -> None:
    """model = "..." and models = [...] on a question table; both at once is a file:line error."""
    path = tmp_path / "plan.toml"
    path.write_text(
        'topic = "Kyoto"\n[research]\nquestions = [\n'
        '  { text = "Which temples?", model = "claude-sonnet-4-5" },\n'
        '  { text = "Which trains?", models = ["gpt-5", "gemini-2.5-pro"] },\n'
        '  "What food?",\n]\n'
    )
    plan = load_plan(path, {}).plan
    assert plan.question_models == (("claude-sonnet-4-5",), ("gpt-5", "gemini-2.5-pro"), ())
    path.write_text(
        'topic = "Kyoto"\n[research]\nquestions = [\n'
        '  { text = "Which temples?", model = "a", models = ["b"] },\n]\n'
    )
    with pytest.raises(PlanError, match="model or models, not both"):
        load_plan(path, {})


async def test_each_provider_is_paced_by_its_own_limits(simulator: Simulator) -> None:
    """The router sends each request to its model's provider, under that provider's limiter."""
    limiters = {"openai": SpyLimiter(), "anthropic": SpyLimiter()}
    models: dict[str, Model] = {
        "openai": FastOpenAIModel(api_key="k", base_url=simulator.base_url),
        "anthropic": AnthropicModel(api_key="k", base_url=simulator.url),
    }
    make_limiter: Callable[[str], Limiter] = limiters.__getitem__
    router = ProviderRouter("openai", models.__getitem__, make_limiter)
    calls = [
        Call(Request.text("Temples?", "gpt-5")),
        Call(Request.text("Temples?", "claude-sonnet-4-5", endpoint=Endpoint.MESSAGES)),
    ]
    outcomes = await Engine(router, limiter=router).run(calls)
    await router.aclose()
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    [openai_headers] = limiters["openai"].headers
    [anthropic_headers] = limiters["anthropic"].headers
    assert "request-id" in anthropic_headers and "request-id" not in openai_headers
    assert outcomes[1].value.endpoint is Endpoint.MESSAGES  # type: ignore[union-attr]


def test_one_run_asks_three_providers_and_synthesizes(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """A plan whose question names three models: three answers, one per provider, one synthesis."""
    sim = spawn_simulator()
    plan = tmp_path / "plan.toml"
    models = ", ".join(f'"{m}"' for m in MODELS)
    plan.write_text(
        f'topic = "Kyoto"\n[research]\nquestions = [{{ text = "Which temples?", '
        f"models = [{models}] }}]\n"
    )
    done = run_fanwise(
        "run", str(plan), "--json", "--no-journal",
        env={
            "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k", "GEMINI_API_KEY": "k",
            "OPENAI_BASE_URL": sim.base_url, "ANTHROPIC_BASE_URL": sim.url,
            "GEMINI_BASE_URL": sim.base_url, "FANWISE_MODEL": None,
        },
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert [q["question"] for q in result["questions"]] == [f"Which temples? [{m}]" for m in MODELS]
    assert all(q["status"] == "fulfilled" for q in result["questions"])
    assert result["synthesis"]["text"]


def test_every_real_provider_gets_the_adaptive_limits() -> None:
    """Anthropic (by its headers) and Gemini (by a rate learned from its 429s) adapt too."""
    from fanwise.factory import get_limiter
    from fanwise.limits import Limits

    for provider in ("anthropic", "gemini"):
        limiter = get_limiter(provider, adapt=True)
        assert isinstance(limiter, Limits)
        assert [type(limit).__name__ for limit in limiter.limits] == [
            "ServerPacing",
            "LearnedRate",
            "AdaptiveConcurrency",
        ]
