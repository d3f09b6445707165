"""``RunConfig`` and ``open_run``: one configuration for every front door, journaled, resumed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import fanwise
from fanwise.cli.engines import run_config
from fanwise.cli.options import RunOptions
from fanwise.config import RunConfig
from fanwise.config.stored import resumed_config, stored_args
from fanwise.factory import ConfigError
from fanwise.models.offline import OfflineSettings
from fanwise.simulator import BatchTiming, Simulator
from fanwise.stages import Stage, Workflow
from tests.conftest import StartSimulator

BOTH_KEYS = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
NO_KEY: dict[str, str] = {}
TWO_STAGES = Workflow(
    (
        Stage("facts", questions=("first fact about tea?", "second fact about tea?")),
        Stage("summary", prompt="Summarise:\n{facts}"),
    ),
    title="tea",
)


def cli_options(**flags: Any) -> RunOptions:
    """The options the CLI's parser gives with its defaults, then ``flags``."""
    values: dict[str, Any] = {
        "model": None, "provider": "auto", "base_url": None, "api": "responses",
        "reasoning_effort": None, "concurrency": 8, "timeout": None, "deadline": None,
        "retries": 3, "mode": "settled", "out": None, "quiet": True, "plain": True,
        "report": None, "seed": 0, "offline_latency": (0.5, 3.0), "offline_fail_rate": 0.0,
    }  # fmt: skip
    return RunOptions(**{**values, **flags})


def journaled(path: Path, run_id: int) -> dict[str, Any]:
    """A run's spec as the journal keeps it."""
    row = sqlite3.connect(path).execute("SELECT spec FROM runs WHERE id = ?", (run_id,)).fetchone()
    spec: dict[str, Any] = json.loads(row[0])
    return spec


def test_the_cli_and_python_build_the_same_config_for_the_same_settings(tmp_path: Path) -> None:
    """The same settings as flags and as keyword arguments make equal configs."""
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."m"]\ninput = 1.0\noutput = 2.0\n')
    environ = {"ANTHROPIC_API_KEY": "k"}
    from_cli = run_config(
        cli_options(
            model="claude-sonnet-4-5", concurrency=4, retries=1, timeout=9.0, rpm=60,
            max_cost=2.5, prices=str(prices), engine="batch", batch_poll=5.0, seed=7,
            journal=str(tmp_path / "j.db"), cache=True,
        ),
        environ,
    )  # fmt: skip
    from_python = RunConfig.from_values(
        environ=environ, model="claude-sonnet-4-5", concurrency=4, retries=1, timeout=9.0,
        rpm=60, max_cost=2.5, prices=str(prices), engine="batch", batch_poll=5.0,
        offline=OfflineSettings(seed=7), journal=True, journal_path=str(tmp_path / "j.db"),
        cache=True,
    )  # fmt: skip
    assert from_cli == from_python
    assert from_cli.provider == "anthropic"
    assert RunConfig.from_dict(json.loads(json.dumps(from_cli.to_dict()))) == from_cli
    assert from_cli.to_dict()["version"] == RunConfig.VERSION


def test_a_config_refuses_what_cannot_work_naming_the_setting() -> None:
    """Bad values and impossible engine combinations are a ConfigError naming the setting."""
    for values, setting in (
        ({"engine": "warp"}, "engine"),
        ({"concurrency": 0}, "concurrency"),
        ({"timeout": -1.0}, "timeout"),
        ({"base_url": "localhost:8000/v1"}, "base_url"),
        ({"provider": "offline", "engine": "batch"}, "engine"),
        ({"provider": "offline", "engine": "auto", "deadline": 60.0}, "engine"),
        ({"provider": "openai", "engine": "auto"}, "deadline"),
        ({"provider": "mystery"}, "provider"),
    ):
        with pytest.raises(ConfigError) as caught:
            RunConfig(**values)
        assert caught.value.setting == setting, values
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_values(environ={"FANWISE_JOURNAL": "off"}, cache=True)
    assert caught.value.setting == "cache"


def test_an_old_journal_spec_becomes_a_config() -> None:
    """A spec from before configs (the CLI's RunOptions as ``options``) converts, args too."""
    options = {
        "provider": "openai", "model": "gpt-5-mini", "base_url": "http://127.0.0.1:9/v1",
        "api": "chat", "concurrency": 3, "retries": 1, "seed": 4, "offline_latency": [0, 0.1],
        "offline_fail_rate": 0.0, "journal": None, "no_journal": False, "cache": False,
        "endpoints": [], "engine": "live", "min_answers": 2, "mode": "all", "out": "/x/out.md",
    }  # fmt: skip
    config = resumed_config({"options": options}, None, {"concurrency": 5})
    assert (config.provider, config.model, config.api) == ("openai", "gpt-5-mini", "chat")
    assert (config.concurrency, config.retries, config.seed) == (5, 1, 4)
    assert config.journal
    assert stored_args({"options": options}) == {"min_answers": 2, "fail_fast": True, "warm": True}
    with pytest.raises(ConfigError):
        resumed_config({"options": options}, None, {"model": "other"})


async def test_research_with_a_claude_model_journals_anthropic(
    simulator: Simulator, tmp_path: Path
) -> None:
    """With both keys set, research(model="claude-...") speaks to and journals Anthropic."""
    path = tmp_path / "journal.db"
    result = await fanwise.aresearch(
        "tea",
        ["why?"],
        model="claude-sonnet-4-5",
        base_url=simulator.url,
        journal=path,
        environ=BOTH_KEYS,
    )
    assert result.text
    run = result.to_dict()["run"]
    spec = journaled(path, run["id"])
    assert spec["config"]["provider"] == "anthropic"
    assert simulator.stats().by_endpoint.get("/v1/messages") == 2
    endpoint = sqlite3.connect(path).execute("SELECT endpoint FROM runs").fetchone()[0]
    assert endpoint.startswith("anthropic@")


async def test_a_python_resume_sends_only_the_missing_calls(
    simulator: Simulator, tmp_path: Path
) -> None:
    """A failed question is asked again by fanwise.aresume, the answered ones are reused."""
    path = tmp_path / "journal.db"
    simulator.script("second fact", ["500"])
    first = await fanwise.arun(
        TWO_STAGES, provider="openai", base_url=simulator.base_url, retries=0, journal=path
    )
    assert first.to_dict()["stats"]["rejected"] == 1
    run_id = first.to_dict()["run"]["id"]
    assert isinstance(run_id, int) and first.run is not None and first.run.id == run_id
    simulator.reset()
    again = await fanwise.aresume(run_id, journal=path)
    assert again.to_dict()["stats"]["rejected"] == 0
    assert again.to_dict()["run"]["id"] == run_id
    sent = simulator.stats()
    assert sent.requests == 2  # the failed fact and the summary over both facts
    assert "first fact about tea?" not in sent.attempts
    assert sent.attempts["second fact about tea?"] == 1


async def test_fanwise_run_on_the_batch_engine_with_a_budget(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """engine="batch" from Python: the stages go through the Batch API at its prices, the run
    and its cost are on the result, the config in the journal."""
    sim = await start_simulator(batch=BatchTiming(speed=86400, validate=0, finalize=0))
    path = tmp_path / "journal.db"
    result = await fanwise.arun(
        TWO_STAGES,
        provider="openai",
        model="gpt-5-mini",
        base_url=sim.base_url,
        engine="batch",
        batch_poll=0.05,
        journal=path,
        max_cost=5.0,
        environ=NO_KEY,
    )
    document = result.to_dict()
    assert document["status"] == "complete", document
    assert isinstance(document["run"]["id"], int)
    assert document["cost"]["max_usd"] == 5.0 and document["cost"]["usd"] > 0
    assert "Batch API" in document["cost"]["prices_taken"]
    spec = journaled(path, document["run"]["id"])
    assert spec["config"]["engine"] == "batch" and spec["config"]["max_cost"] == 5.0


def test_the_cli_journals_the_config_and_resumes_from_it(simulator_process: str) -> None:
    """`fanwise run` journals a versioned config, not its flags; `fanwise resume` reads it."""
    from click.testing import CliRunner

    from fanwise.cli import cli

    environ = {"OPENAI_API_KEY": ""}
    done = CliRunner().invoke(
        cli,
        ["research", "tea", "-q", "why?", "--provider", "openai", "--base-url",
         simulator_process, "--quiet", "--json", "--no-stream"],
        env=environ,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    run_id = json.loads(done.stdout)["run"]["id"]
    again = CliRunner().invoke(cli, ["resume", str(run_id), "--json"], env=environ)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["run"]["id"] == run_id


async def test_fanwise_run_takes_a_research_plan_and_reports_its_run(tmp_path: Path) -> None:
    """A research Plan runs through fanwise.arun as research does; its run id is in to_dict."""
    from fanwise.stages.research import Plan

    quick = OfflineSettings(latency=(0.0, 0.0))
    path = tmp_path / "journal.db"
    result = await fanwise.arun(
        Plan("tea", ("why?", "how?")), provider="offline", offline=quick, journal=path, max_cost=1.0
    )
    document = result.to_dict()
    assert document["status"] == "complete" and document["cost"]["max_usd"] == 1.0
    again = await fanwise.aresume(document["run"]["id"], journal=path)
    assert again.to_dict()["run"]["id"] == document["run"]["id"]
    assert all(answer["cached"] for answer in again.to_dict()["questions"])
