"""The command line: every exit code, the output streams, the JSON shape and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fanwise.cli import cli

FAST = ["--offline-latency", "0,0.01"]
NO_KEY = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}


def fanwise(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=NO_KEY, catch_exceptions=False)


def test_travel_writes_a_guide_on_the_offline_model_and_says_so() -> None:
    """No key: offline model announced on stderr, progress lines, the guide on stdout, exit 0."""
    result = fanwise("travel", "Kyoto", *FAST)
    assert result.exit_code == 0
    assert result.stdout.startswith("# Kyoto")
    assert "built-in offline model" in result.stderr
    assert result.stderr.count("🔄 Asking: ") == 3
    assert result.stderr.count("✅ Answered: ") == 3
    assert (
        "3 fulfilled, 0 rejected" in result.stderr
        and "calls in flight on average" in result.stderr
        and "faster" not in result.stderr
    )
    assert "🔄" not in result.stdout, "progress must never mix into the result on stdout"


def test_some_failures_exit_4_with_a_partial_guide() -> None:
    """A partial failure still produces a guide, names the failure, and exits 4."""
    result = fanwise("travel", "Kyoto", *FAST, "--offline-fail-rate", "0.5", "--retries", "0")
    assert result.exit_code == 4
    assert "❌ Failed: " in result.stderr
    assert "## What this guide is missing" in result.stdout


def test_everything_failing_exits_1_without_a_synthesis() -> None:
    """When every question fails there is no synthesis call, a clear message, and exit 1."""
    result = fanwise(
        "travel", "Kyoto", *FAST, "--offline-fail-rate", "1", "--retries", "0", "--json"
    )
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["status"] == "no_result" and data["synthesis"] is None
    assert "all 3 research questions failed; no synthesis call was made" in result.stderr


def test_fail_fast_mode_exits_1_and_cancels_the_rest() -> None:
    """--mode all aborts on the first failure; the others are cancelled, exit 1."""
    result = fanwise(
        "travel", "Kyoto", "--offline-latency", "0.05,4", "--offline-fail-rate", "0.5",
        "--retries", "0", "--mode", "all", "--json", "--seed", "10",
    )  # fmt: skip
    assert result.exit_code == 1
    statuses = [q.get("error", {}).get("kind") for q in json.loads(result.stdout)["questions"]]
    # Seed 10 fails the first question at 0.2 s; the other two would answer after 1 s and more
    # (seen with --mode settled): so they are cancelled, with time to spare on a loaded machine.
    assert statuses == ["rate_limited", "cancelled", "cancelled"]
    assert "fail-fast" in result.stderr


def test_json_output_is_one_document_with_every_question() -> None:
    """--json prints one document: topic, each question's outcome, synthesis and stats."""
    result = fanwise(
        "research", "tea", "-q", "Where does tea grow?", "-q", "How is it made?", *FAST, "--json"
    )
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["topic"] == "tea" and [q["question"] for q in data["questions"]] == [
        "Where does tea grow?",
        "How is it made?",
    ]
    assert all(q["status"] == "fulfilled" and q["attempts"] == 1 for q in data["questions"])
    assert data["synthesis"]["text"] and data["stats"]["fulfilled"] == 2


def test_out_writes_the_result_to_a_file(tmp_path: Path) -> None:
    """--out FILE keeps stdout empty and writes the guide to the file."""
    out = tmp_path / "guide.md"
    result = fanwise("travel", "Lisbon", *FAST, "--out", str(out), "--quiet")
    assert result.exit_code == 0 and result.stdout == ""
    assert out.read_text().startswith("# Lisbon")
    assert "Asking" not in result.stderr, "--quiet hides progress"


def test_run_executes_a_plan_file_with_variables(tmp_path: Path) -> None:
    """`fanwise run PLAN --set k=v` fills the variables and runs the questions."""
    plan = tmp_path / "p.toml"
    plan.write_text('topic = "{x}"\n[variables]\nx = {}\n[research]\nquestions = ["Why {x}?"]\n')
    result = fanwise("run", str(plan), "--set", "x=Rome", *FAST, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["questions"][0]["question"] == "Why Rome?"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["travel"], "Missing argument 'DESTINATION'"),
        (["travel", "Kyoto", "--concurrency", "0"], "--concurrency"),
        (["travel", "Kyoto", "--bogus"], "No such option '--bogus'"),
        (["travel", "Kyoto", "--offline-latency", "3,1"], "needs 0 <= LOW <= HIGH"),
        (["research", "tea"], "no questions: give -q QUESTION"),
        (["research", "tea", "-q", " "], "a question must not be empty"),
        (["run", "travel", "--set", "destination"], "expected KEY=VALUE"),
        (["run", "travel"], "--set destination=..."),
        (["run", "travel", "--set", "place=x"], "--set place: the plan has no such variable"),
        (["batch", "in.jsonl", "--min-answers", "2"], "No such option '--min-answers'"),
        (["batch", "in.jsonl", "--no-stream"], "No such option '--no-stream'"),
        (["batch", "in.jsonl", "--json"], "No such option '--json'"),
        (["run", "nope.toml"], "nope.toml: no such plan file"),
        (["travel", "Kyoto", "--provider", "openai"], "needs an API key: set OPENAI_API_KEY"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args: list[str], message: str) -> None:
    """Bad flags, plans and missing keys give one clear line and exit 2, never a traceback."""
    result = fanwise(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_batch_help_lists_only_the_flags_a_batch_takes() -> None:
    """`batch --help` shows the shared flags but none of a workflow's synthesis flags."""
    shown = fanwise("batch", "--help").stdout
    assert "--concurrency" in shown and "--engine" in shown and "--deadline" in shown
    for workflow_only in ("--min-answers", "--stream", "--json", "research phase"):
        assert workflow_only not in shown
    assert "--min-answers" in fanwise("travel", "--help").stdout


def test_a_bad_plan_file_names_the_line(tmp_path: Path) -> None:
    """A plan with a typo is reported as file:line: problem, exit 2."""
    plan = tmp_path / "bad.toml"
    plan.write_text('topic = "t"\n[research]\nquestion = ["a?"]\n')
    result = fanwise("run", str(plan))
    assert result.exit_code == 2
    assert (
        f"{plan}:3: unknown key 'question' in [research]; did you mean 'questions'?"
        in result.stderr
    )


def run_process(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, **NO_KEY, "PYTHONUNBUFFERED": "1"}
    process: subprocess.Popen[str] = subprocess.Popen(
        [sys.executable, "-m", "fanwise", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,  # type: ignore[call-overload]
    )
    return process


def test_python_dash_m_runs_the_cli() -> None:
    """`python -m fanwise --version` is the same CLI as the console script."""
    process = run_process("--version")
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and out.startswith("fanwise, version ")


def test_ctrl_c_cancels_cleanly_with_exit_130() -> None:
    """SIGINT mid-run cancels the calls in flight and exits 130 with a message, no traceback."""
    process = run_process("travel", "Kyoto", "--offline-latency", "30,30")
    assert process.stderr is not None
    deadline = time.monotonic() + 30
    seen = ""
    while "🔄 Asking" not in seen and time.monotonic() < deadline:
        seen += process.stderr.readline()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
