"""Providers from the command line: Anthropic end to end against the simulator, and ``auto``.

The research runs in a child process, as a user's shell runs it, against a simulator subprocess
that serves Anthropic's Messages API at its root.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from fanwise.models.base import Endpoint
from fanwise.models.providers import choose_provider, endpoint_for, implied_provider
from tests.conftest import SimulatorProcess
from tests.processes import run_fanwise

NO_KEYS = {"OPENAI_API_KEY": None, "ANTHROPIC_API_KEY": None, "GEMINI_API_KEY": None}
QUESTIONS = ("-q", "Which temples?", "-q", "Which trains?")


def research(url: str, *flags: str) -> tuple[int, str, str]:
    done = run_fanwise(
        "research", "Kyoto", *QUESTIONS, "--provider", "anthropic", "--base-url", url,
        "--model", "claude-sonnet-4-5", "--no-journal", *flags,
        env={**NO_KEYS, "ANTHROPIC_API_KEY": "test", "OPENAI_BASE_URL": None},
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_research_on_anthropic_as_json(spawn_simulator: Callable[..., SimulatorProcess]) -> None:
    """--provider anthropic --base-url ROOT: every answer and the synthesis are Messages."""
    sim = spawn_simulator()
    code, out, err = research(sim.url, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "complete"
    assert [a["status"] for a in result["questions"]] == ["fulfilled", "fulfilled"]
    assert result["synthesis"]["text"]


def test_research_on_anthropic_streams_the_synthesis_through_a_pipe(
    spawn_simulator: Callable[..., SimulatorProcess],
) -> None:
    """The streamed synthesis reaches a pipe once, whole, from Anthropic's event stream."""
    sim = spawn_simulator()
    code, out, err = research(sim.url)
    assert code == 0, err
    assert len(out.strip()) > 100 and out.count(out.strip()[:40]) == 1


def test_a_missing_anthropic_key_is_a_usage_error() -> None:
    """--provider anthropic without ANTHROPIC_API_KEY: exit 2, one line naming the variable."""
    done = run_fanwise(
        "research", "Kyoto", *QUESTIONS, "--provider", "anthropic", "--no-journal",
        env={**NO_KEYS, "OPENAI_BASE_URL": None},
    )  # fmt: skip
    assert done.returncode == 2
    assert "ANTHROPIC_API_KEY" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("keys", "model", "expected"),
    [
        ({}, None, "offline"),
        ({"ANTHROPIC_API_KEY": "k"}, None, "anthropic"),
        ({"GEMINI_API_KEY": "k"}, None, "gemini"),
        ({"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}, None, "openai"),
        ({"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}, "claude-haiku-4-5", "anthropic"),
        ({"OPENAI_API_KEY": "k"}, "gemini-2.5-pro", "gemini"),
        ({}, "claude-haiku-4-5", "offline"),
    ],
)
def test_auto_picks_the_provider_from_the_model_then_the_keys(
    keys: dict[str, str], model: str | None, expected: str
) -> None:
    """A claude-*/gemini-* model names its provider; else the first key set; else offline."""
    assert choose_provider("auto", keys, model) == expected


def test_each_provider_has_its_endpoint() -> None:
    """Anthropic speaks Messages, Gemini Chat Completions, OpenAI what --api says."""
    assert endpoint_for("anthropic", "responses") is Endpoint.MESSAGES
    assert endpoint_for("gemini", "responses") is Endpoint.CHAT
    assert endpoint_for("openai", "chat") is Endpoint.CHAT
    assert implied_provider("gpt-5") is None


def test_auto_says_which_provider_when_several_keys_are_set(
    spawn_simulator: Callable[..., SimulatorProcess],
) -> None:
    """Two keys set and no model that decides: stderr says which provider runs."""
    sim = spawn_simulator()
    done = run_fanwise(
        "research", "Kyoto", *QUESTIONS, "--base-url", sim.base_url, "--no-journal", "--json",
        env={**NO_KEYS, "OPENAI_API_KEY": "test", "ANTHROPIC_API_KEY": "test"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "keys are set for openai, anthropic: using openai" in done.stderr


def test_research_on_gemini_through_googles_face(
    spawn_simulator: Callable[..., SimulatorProcess],
) -> None:
    """--provider gemini against the simulator's Google face: Chat Completions, no effort sent."""
    sim = spawn_simulator()
    done = run_fanwise(
        "research", "Kyoto", *QUESTIONS, "--provider", "gemini", "--base-url",
        sim.url + "/v1beta/openai", "--no-journal", "--json",
        env={**NO_KEYS, "GEMINI_API_KEY": "test", "OPENAI_BASE_URL": None, "FANWISE_MODEL": None},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["model"] == "gemini-2.5-flash" and result["status"] == "complete"
    assert result["cost"]["usd"] > 0, "gemini-2.5-flash is priced"


def test_a_named_server_without_a_key_is_asked_not_the_offline_model() -> None:
    """auto with a base URL and no key: OpenAI-compatible, or the provider a model names."""
    assert choose_provider("auto", {}, None, base_url="http://127.0.0.1:9/v1") == "openai"
    assert choose_provider("auto", {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}) == "openai"
    assert choose_provider("auto", {}, "claude-haiku-4-5", base_url="http://h") == "anthropic"


def _routed(provider: str, own: dict[str, str], decoy: SimulatorProcess) -> tuple[int, str]:
    """A research on ``provider`` with its key and own base URL, OPENAI_BASE_URL at a decoy."""
    done = run_fanwise(
        "research", "Kyoto", *QUESTIONS, "--provider", provider, "--no-journal", "--json",
        env={**NO_KEYS, f"{provider.upper()}_API_KEY": "sk-SECRET", "FANWISE_MODEL": None,
             "OPENAI_BASE_URL": decoy.base_url, **own},
    )  # fmt: skip
    return done.returncode, done.stderr


def test_openai_base_url_never_takes_an_anthropic_or_gemini_run(
    spawn_simulator: Callable[..., SimulatorProcess],
) -> None:
    """OPENAI_BASE_URL is OpenAI's only: Anthropic and Gemini runs go to their own base URLs,
    and their keys never reach the OpenAI-compatible server (which refuses every call)."""
    sim, decoy = spawn_simulator(), spawn_simulator("--fail", "401=1")
    code, err = _routed("anthropic", {"ANTHROPIC_BASE_URL": sim.url}, decoy)
    assert code == 0, err
    code, err = _routed("gemini", {"GEMINI_BASE_URL": sim.url + "/v1beta/openai"}, decoy)
    assert code == 0, err


def test_openai_base_url_without_a_key_still_means_openai(
    spawn_simulator: Callable[..., SimulatorProcess],
) -> None:
    """auto, no key, OPENAI_BASE_URL set (a local server): that server answers, not offline."""
    sim = spawn_simulator()
    done = run_fanwise(
        "research", "Kyoto", *QUESTIONS, "--no-journal", "--json", "--provider", "auto",
        env={**NO_KEYS, "OPENAI_BASE_URL": sim.base_url, "FANWISE_MODEL": None},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "offline" not in done.stderr.lower()
    assert json.loads(done.stdout)["status"] == "complete"
