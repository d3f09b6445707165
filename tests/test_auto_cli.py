"""``fanwise batch --engine auto --deadline`` from the command line, against simulator processes."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fanwise.cli import cli
from fanwise.journal import Journal
from tests.conftest import SimulatorProcess
from tests.processes import batch_submitted, kill_once_submitted, start_fanwise

STALL = ("--batch-speed", "60", "--batch-duration", "30", "--batch-finalize", "6",
         "--batch-stall-at", "0.4")  # fmt: skip
"""Batches that validate for 1 s, run 40 % of their lines in 0.2 s, then stall."""


def write_input(path: Path, count: int) -> Path:
    lines = [{"prompt": f"question {i}", "custom_id": f"q{i}"} for i in range(count)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def fanwise(*args: str, url: str | None = None, provider: str = "openai") -> Result:
    target = ["--provider", provider, "--base-url", url] if url else []
    env = {"OPENAI_API_KEY": "test", "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}
    env |= {"ANTHROPIC_API_KEY": "test", "GEMINI_API_KEY": "test"}
    return CliRunner().invoke(cli, [*args, *target], env=env, catch_exceptions=False)


ROOTS = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta/openai"}
"""Where each provider finds the simulator, under its root URL."""


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/_stats", timeout=10) as response:
        data: dict[str, Any] = json.load(response)
    return data


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--engine", "auto"], "--engine auto needs --deadline"),
        (["--plan-only", "--deadline", "1h"], "--plan-only: the plan is --engine auto's"),
        (["--engine", "auto", "--deadline", "25:00"], "is not a time of day"),
        (["--engine", "auto", "--deadline", "2001-01-01T00:00"], "has passed"),
    ],
)
def test_bad_auto_flags_are_refused_before_any_request(
    tmp_path: Path, flags: list[str], said: str
) -> None:
    """A missing or unreadable deadline, or --plan-only without auto: exit 2, one line."""
    source = write_input(tmp_path / "in.jsonl", 3)
    result = fanwise("batch", str(source), "--journal", str(tmp_path / "j.db"), *flags,
                     url="http://127.0.0.1:9/v1")  # fmt: skip
    assert result.exit_code == 2
    assert said in result.output


def test_plan_only_prints_the_split_and_cost_and_sends_nothing(
    simulator_process: str, tmp_path: Path
) -> None:
    """--plan-only: the expected split and cost on stdout, exit 0, no request, no run."""
    source = write_input(tmp_path / "in.jsonl", 20)
    journal = tmp_path / "j.db"
    result = fanwise(
        "batch", str(source), "--engine", "auto", "--deadline", "2h", "--plan-only",
        "--journal", str(journal), "--model", "gpt-5-mini", url=simulator_process,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "expected cost $" in result.output and "all 20 lines live take" in result.output
    assert stats(simulator_process)["requests"] == 0
    assert not journal.exists()


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_an_auto_run_whose_batch_stalls_meets_its_deadline_at_a_lower_cost(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path, provider: str
) -> None:
    """Stalled at 40 %: 4 lines by the batch, 6 live, none twice (OpenAI's Batch API,
    Anthropic's Message Batches, Gemini's Batch Mode); the summary, show and report say so."""
    sim = spawn_simulator(*STALL)
    source = write_input(tmp_path / "in.jsonl", 10)
    journal = tmp_path / "j.db"
    result = fanwise(
        "batch", str(source), "--engine", "auto", "--deadline", "12s", "--live-latency", "0.2",
        "--journal", str(journal), "-o", str(tmp_path / "out.jsonl"), "--plain",
        url=sim.url + ROOTS[provider], provider=provider,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "switching to live" in result.output
    assert "🧭 auto: 4 by the Batch API" in result.output and "6 live" in result.output
    assert all(count == 1 for count in stats(sim.base_url)["attempts"].values())
    with Journal.open(journal) as opened:
        run = opened.runs(1)[0]
    auto = run.summary["auto"]
    assert auto["lines"] == {"batch": 4, "live": 6}
    assert auto["deadline_met"] is True and auto["switch_reason"]
    assert auto["saved_usd"] == pytest.approx(auto["cost_usd"]["batch"])
    shown = json.loads(fanwise("show", str(run.id), "--json", "--journal", str(journal)).output)
    assert shown["run"]["auto"] == auto
    assert [c["attempts"][-1]["via"] for c in shown["calls"]] == ["batch"] * 4 + ["live"] * 6
    page = tmp_path / "report.html"
    fanwise("report", str(run.id), "-o", str(page), "--journal", str(journal))
    assert "by the Batch API" in page.read_text()


def test_an_auto_run_killed_and_resumed_keeps_its_deadline_and_pays_once(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """kill -9 once the batch is made, `fanwise resume`: the same deadline, the batch adopted,
    4 lines kept at batch price, 6 live, no prompt run twice, the deadline met."""
    sim = spawn_simulator(*STALL)
    source = write_input(tmp_path / "in.jsonl", 10)
    journal = tmp_path / "j.db"
    process = start_fanwise(
        "batch", str(source), "--engine", "auto", "--deadline", "14s", "--live-latency", "0.2",
        "--journal", str(journal), "-o", str(tmp_path / "out.jsonl"), "--quiet",
        "--provider", "openai", "--base-url", sim.base_url, env={"OPENAI_API_KEY": "test"},
    )  # fmt: skip
    kill_once_submitted(process, journal, within=30)
    done = start_fanwise("resume", "1", "--journal", str(journal), "--quiet",
                         env={"OPENAI_API_KEY": "test"})  # fmt: skip
    _, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    with Journal.open(journal) as opened:
        run = opened.runs(1)[0]
    auto = run.summary["auto"]
    assert auto["deadline"] == run.spec["config"]["deadline_at"]  # the first start's
    assert auto["lines"] == {"batch": 4, "live": 6} and auto["deadline_met"] is True
    assert all(count == 1 for count in stats(sim.base_url)["attempts"].values())
    assert stats(sim.base_url)["requests"] == 6


def test_an_auto_run_interrupted_and_resumed_leaves_no_call_unanswered(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """Ctrl-C once the batch is made, `fanwise resume`: the batch's lines are collected, not
    lost, so the run counts no call sent and never answered and its cost is no range."""
    sim = spawn_simulator(*STALL)
    source = write_input(tmp_path / "in.jsonl", 10)
    journal = tmp_path / "j.db"
    process = start_fanwise(
        "batch", str(source), "--engine", "auto", "--deadline", "14s", "--live-latency", "0.2",
        "--journal", str(journal), "-o", str(tmp_path / "out.jsonl"), "--quiet",
        "--provider", "openai", "--base-url", sim.base_url, env={"OPENAI_API_KEY": "test"},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not batch_submitted(journal):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
    done = start_fanwise("resume", "1", "--journal", str(journal), "--quiet",
                         env={"OPENAI_API_KEY": "test"})  # fmt: skip
    _, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    with Journal.open(journal) as opened:
        [run] = opened.runs(1)
    totals = run.totals
    assert run.status == "complete" and totals.fulfilled == 10
    assert totals.unanswered == 0 and totals.cost_max == totals.cost, totals


def test_a_research_plan_runs_its_questions_through_auto_and_its_json_says_how(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """`fanwise travel --engine auto --deadline --json`: the questions by the stalled batch and
    live, the synthesis live; the document's `auto` gives lines and cost by path."""
    sim = spawn_simulator(*STALL)
    result = fanwise(
        "travel", "Lyon", "--engine", "auto", "--deadline", "12s", "--live-latency", "0.2",
        "--json", "--journal", str(tmp_path / "j.db"), url=sim.base_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    auto = document["auto"]
    assert document["status"] == "complete" and auto["deadline_met"] is True
    assert auto["lines"]["batch"] >= 1 and sum(auto["lines"].values()) == 4  # 3 + synthesis
    assert all(count == 1 for count in stats(sim.base_url)["attempts"].values())
