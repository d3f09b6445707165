"""The Python API: ``research``/``ask_all`` and their async twins, and the ``get_model`` factory."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import fanwise
from fanwise.cli import cli
from fanwise.endpoints import EndpointPool
from fanwise.journal import Journal
from fanwise.models.fast import FastOpenAIModel
from fanwise.models.openai import OpenAIModel
from fanwise.outcome import ServerError
from tests.scripted import Reply, ScriptedModel
from tests.test_fast_transport import open_session

QUICK = fanwise.OfflineSettings(latency=(0, 0.01))
NO_KEY: dict[str, str] = {}
KEY = {"OPENAI_API_KEY": "sk-test"}


def test_research_writes_a_guide_with_no_key_and_warns_that_it_is_offline() -> None:
    """With no key, research() runs on the offline model, says so as a warning, returns text."""
    with pytest.warns(fanwise.OfflineModelWarning, match="offline model"):
        result = fanwise.research(
            "Kyoto", ["What to see?", "How to get around?"], offline=QUICK, environ=NO_KEY
        )
    assert result.status is fanwise.Status.COMPLETE
    assert result.text is not None and result.text.startswith("# Kyoto")
    assert [a.question for a in result.answers] == ["What to see?", "How to get around?"]


async def test_aresearch_takes_a_model_and_adds_the_instructions_to_the_synthesis() -> None:
    """A ready model is used as given (and left open); instructions end the synthesis prompt."""
    model = ScriptedModel()
    result = await fanwise.aresearch("tea", ("Which leaves?",), model=model, instructions="Brief.")
    assert result.status is fanwise.Status.COMPLETE
    synthesis = model.history[-1].prompt
    assert synthesis.startswith(fanwise.Plan("t", ["q"]).synthesis_instructions[:30])
    assert "Brief." in synthesis and "Which leaves?" in synthesis


async def test_research_inside_an_event_loop_points_to_aresearch() -> None:
    """The blocking form refuses to nest an event loop, and says which function to await."""
    with pytest.raises(RuntimeError, match=r"await fanwise\.aresearch"):
        fanwise.research("tea", ["Which leaves?"], model=ScriptedModel())


def test_ask_all_returns_one_outcome_per_prompt_in_input_order() -> None:
    """Strings and Requests mixed; a failure is a Rejected in its place, not an exception."""
    model = ScriptedModel()
    model.enqueue("slow", Reply("slow answer", delay=0.05))
    model.enqueue("broken", Reply("", error=ServerError("down", status_code=500)))
    outcomes = fanwise.ask_all(
        ["slow", fanwise.Request.text("fast", model="gpt-5-mini"), "broken"], model=model, retries=0
    )
    assert [o.status for o in outcomes] == ["fulfilled", "fulfilled", "rejected"]
    first, second, _ = outcomes
    assert isinstance(first, fanwise.Fulfilled) and first.value.text == "slow answer"
    assert isinstance(second, fanwise.Fulfilled) and second.value.model == "gpt-5-mini"


def test_a_journaled_run_is_recorded_and_the_cache_answers_it_again(tmp_path: Path) -> None:
    """journal=PATH records the run; cache=True then answers the same calls from it."""
    path = tmp_path / "journal.db"
    prompts = ["Why is the sky blue?", "Why is the sea salty?"]
    fanwise.ask_all(prompts, provider="offline", journal=path, offline=QUICK)
    again = fanwise.ask_all(prompts, provider="offline", journal=path, cache=True, offline=QUICK)
    assert all(isinstance(o, fanwise.Fulfilled) and o.cached for o in again)
    with Journal.open(path) as journal:
        assert [r.status for r in journal.runs()] == ["complete", "complete"]


def test_plan_questions_take_any_sequence_and_are_kept_as_a_tuple() -> None:
    """A list is accepted (and typed) as questions; one bare string is refused."""
    assert fanwise.Plan("t", ["a?", "b?"]).questions == ("a?", "b?")
    with pytest.raises(TypeError, match="not one string"):
        fanwise.Plan("t", "a?")


def test_get_model_resolves_provider_and_transport_as_the_cli_does() -> None:
    """Key: the aiohttp transport unless sdk is asked; endpoints: a pool; no key: offline."""
    assert isinstance(fanwise.get_model(environ=KEY), FastOpenAIModel)
    assert isinstance(fanwise.get_model(transport="sdk", environ=KEY), OpenAIModel)
    urls = ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    pool = fanwise.get_model(endpoints=urls, environ=KEY)
    assert isinstance(pool, EndpointPool) and len(pool.endpoints) == 2
    with pytest.warns(fanwise.OfflineModelWarning):
        assert isinstance(fanwise.get_model(environ=NO_KEY), fanwise.OfflineModel)
    with pytest.raises(fanwise.ConfigError, match="needs an API key") as caught:
        fanwise.get_model("openai", environ=NO_KEY)
    assert caught.value.setting == "api_key"


async def test_a_model_closes_its_connections_at_the_end_of_async_with() -> None:
    """`async with model:` calls aclose(); the offline model inherits a no-op aclose."""
    async with FastOpenAIModel(api_key="k", base_url="http://127.0.0.1:1/v1") as model:
        session = model._http.get()
    assert session.closed and open_session(model) is None
    async with fanwise.OfflineModel() as offline:
        assert offline.name == "offline"


def test_a_run_recorded_from_python_is_seen_by_the_cli(tmp_path: Path) -> None:
    """`fanwise show` prints a journaled research(); `resume` of an ask_all run says why not."""
    path = tmp_path / "journal.db"
    result = fanwise.research(
        "tea", ["Which leaves?"], provider="offline", journal=path, offline=QUICK
    )
    fanwise.ask_all(["Why?"], provider="offline", journal=path, offline=QUICK)
    runner = CliRunner()
    shown = runner.invoke(cli, ["show", "1", "--journal", str(path)])
    assert shown.exit_code == 0 and shown.stdout.strip() == (result.text or "").strip()
    refused = runner.invoke(cli, ["resume", "2", "--journal", str(path)])
    assert refused.exit_code == 2 and "was made from Python" in refused.stderr


def _offline_warnings(run: Callable[[], object]) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [w for w in caught if issubclass(w.category, fanwise.OfflineModelWarning)]


WORKFLOW = fanwise.Workflow((fanwise.Stage("a", prompt="Hi?"),))


def test_the_offline_warning_points_at_the_callers_line() -> None:
    """research, ask_all, run and get_model warn at the line that called them, not at a line
    inside fanwise or asyncio (research reaches get_model through asyncio.run)."""
    runs: list[Callable[[], object]] = [
        lambda: fanwise.research("t", ["q?"], offline=QUICK, environ=NO_KEY),
        lambda: fanwise.ask_all(["q?"], offline=QUICK, environ=NO_KEY),
        lambda: fanwise.run(WORKFLOW, offline=QUICK, environ=NO_KEY),
        lambda: fanwise.get_model(environ=NO_KEY),
    ]
    for run in runs:
        [warning] = _offline_warnings(run)
        assert warning.filename == __file__, warning.filename


async def test_the_async_twins_offline_warning_points_at_the_awaiting_line() -> None:
    """aresearch, aask_all and arun warn at the line that awaits them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await fanwise.aresearch("t", ["q?"], offline=QUICK, environ=NO_KEY)
        await fanwise.aask_all(["q?"], offline=QUICK, environ=NO_KEY)
        await fanwise.arun(WORKFLOW, offline=QUICK, environ=NO_KEY)
    found = [w for w in caught if issubclass(w.category, fanwise.OfflineModelWarning)]
    assert [w.filename for w in found] == [__file__] * 3
