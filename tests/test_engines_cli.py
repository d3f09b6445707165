"""--engine batch and --endpoints from the command line, against simulator processes.

The batch round trip and its resume run in real ``fanwise`` processes (one killed with -9);
the simulator's own batch list and per-prompt counts prove what was, and was not, sent twice.
"""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from openai import OpenAI
from rich.console import Console

from fanwise.cli import cli
from fanwise.events import BatchProgress
from fanwise.ui.live import LiveConsole
from fanwise.ui.plain import PlainConsole
from tests.conftest import SimulatorProcess
from tests.processes import kill_once_submitted, start_fanwise

FAST_POLL = ("--batch-poll", "0.05")
OPENAI_KEY = {"OPENAI_API_KEY": "test"}


def write_input(path: Path, count: int) -> Path:
    lines = [{"prompt": f"question {i}", "custom_id": f"q{i}"} for i in range(count)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def fanwise(*args: str, url: str | None = None) -> Result:
    """The CLI in-process, against the simulator at ``url`` when one is given."""
    target = ["--provider", "openai", "--base-url", url] if url else []
    env = {"OPENAI_API_KEY": "test", "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}
    return CliRunner().invoke(cli, [*args, *target], env=env, catch_exceptions=False)


def batches(url: str) -> list[Any]:
    with OpenAI(api_key="t", base_url=url, max_retries=0) as client:
        return list(client.batches.list(limit=100).data)


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/_stats", timeout=10) as response:
        data: dict[str, Any] = json.load(response)
    return data


def read_output(path: Path) -> dict[str, dict[str, Any]]:
    return {r["custom_id"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_batch_engine_does_the_whole_round_trip(simulator_process: str, tmp_path: Path) -> None:
    """`fanwise batch --engine batch`: one batch, every line back by custom_id, at half price."""
    source = write_input(tmp_path / "in.jsonl", 6)
    out = tmp_path / "out.jsonl"
    result = fanwise(
        "batch", str(source), "--engine", "batch", *FAST_POLL, "-o", str(out), "--plain",
        url=simulator_process,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "📦 Batch batch_" in result.output and "completed, 6/6 done" in result.output
    lines = read_output(out)
    assert sorted(lines) == [f"q{i}" for i in range(6)]
    assert lines["q0"]["response"]["body"]["output"][0]["content"][0]["text"].startswith(
        "simulated"
    )
    assert len(batches(simulator_process)) == 1
    assert stats(simulator_process)["requests"] == 0  # no live call at all
    live = fanwise("batch", str(source), "-o", str(tmp_path / "live.jsonl"), url=simulator_process)
    assert live.exit_code == 0
    cost = {r["fanwise"]["cost_usd"] for r in read_output(tmp_path / "live.jsonl").values()}
    half = {r["fanwise"]["cost_usd"] for r in lines.values()}
    assert sorted(half) == sorted(round(c / 2, 8) for c in cost)


def test_resume_collects_the_batch_a_killed_process_left_running(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """kill -9 while the batch runs; `fanwise resume` finishes it without a second batch."""
    sim = spawn_simulator("--batch-speed", "300")  # a batch takes about 2.4 s
    source = write_input(tmp_path / "in.jsonl", 4)
    journal, out = tmp_path / "journal.db", tmp_path / "out.jsonl"
    process = start_fanwise(
        "batch", str(source), "--engine", "batch", "--batch-poll", "0.1", "-o", str(out),
        "--journal", str(journal), "--quiet", "--provider", "openai", "--base-url", sim.base_url,
        env=OPENAI_KEY,
    )  # fmt: skip
    kill_once_submitted(process, journal, within=30)
    assert [b.status for b in batches(sim.base_url)] in (["validating"], ["in_progress"])

    done = start_fanwise("resume", "1", "--journal", str(journal), "--quiet", env=OPENAI_KEY)
    _, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert sorted(read_output(out)) == ["q0", "q1", "q2", "q3"]
    assert len(batches(sim.base_url)) == 1
    assert stats(sim.base_url)["requests"] == 0


def test_endpoints_spread_a_batch_file_over_several_servers(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """`--endpoints A,B`: both servers answer a share of the calls."""
    sims = [spawn_simulator("--latency", "0.02") for _ in range(2)]
    source = write_input(tmp_path / "in.jsonl", 12)
    result = fanwise(
        "batch", str(source), "--provider", "openai", "--quiet", "-c", "4",
        "--endpoints", ",".join(s.base_url for s in sims), "-o", str(tmp_path / "out.jsonl"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    counts = [stats(s.base_url)["requests"] for s in sims]
    assert sum(counts) == 12 and min(counts) >= 3


def test_a_plan_names_its_endpoints(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """[model] endpoints in a plan spreads its research like --endpoints."""
    sims = [spawn_simulator("--latency", "0.02") for _ in range(2)]
    plan = tmp_path / "plan.toml"
    questions = ", ".join(f'"question {i}?"' for i in range(6))
    urls = ", ".join(f'"{s.base_url}"' for s in sims)
    plan.write_text(
        f'topic = "t"\n[research]\nquestions = [{questions}]\n[model]\nendpoints = [{urls}]\n'
    )
    result = fanwise("run", str(plan), "--provider", "openai", "--quiet", "--no-stream")
    assert result.exit_code == 0, result.output
    assert all(stats(s.base_url)["requests"] >= 2 for s in sims)


def test_engine_flags_that_cannot_work_are_refused_with_the_reason(tmp_path: Path) -> None:
    """Offline batch, batch with --mode all, a bad endpoint URL: exit 2 and one clear line."""
    source = write_input(tmp_path / "in.jsonl", 1)
    env = {"OPENAI_API_KEY": ""}
    cases = {
        ("--engine", "batch", "--provider", "offline"): "needs the OpenAI Batch API",
        (
            "--engine",
            "batch",
            "--mode",
            "all",
            "--provider",
            "openai",
            "--base-url",
            "http://x/v1",
        ): ("--mode settled"),
        ("--endpoints", "localhost:8000"): "http:// or https://",
    }
    for flags, message in cases.items():
        result = CliRunner().invoke(cli, ["batch", str(source), *flags], env=env)
        assert result.exit_code == 2, (flags, result.output)
        assert message in result.output
        assert "Traceback" not in result.output
    plan = tmp_path / "plan.toml"
    plan.write_text('topic = "t"\n[research]\nquestions = ["q"]\n[model]\nendpoints = ["nope"]\n')
    result = CliRunner().invoke(cli, ["run", str(plan)], env=env)
    assert result.exit_code == 2
    assert f"{plan}:5:" in result.output


def test_batch_progress_is_a_line_in_the_live_view_and_in_plain_lines() -> None:
    """A BatchProgress event prints one line, above the live view or among the plain lines."""
    event = BatchProgress("batch_1", "in_progress", 3, 1, 10, 0.5)
    screen = io.StringIO()
    LiveConsole(Console(file=screen, force_terminal=True, width=100))(event)
    plain = PlainConsole(io.StringIO()).line(event)
    assert plain == "📦 Batch batch_1: in_progress, 4/10 done, 1 failed"
    assert plain in screen.getvalue()
