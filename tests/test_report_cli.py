"""A run read back from the journal: ``fanwise show RUN --timeline`` and ``fanwise report RUN``."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from fanwise.journal import Journal
from fanwise.paths import journal_path
from tests.processes import run_fanwise

pytestmark = pytest.mark.slow


def fanwise(*args: str) -> subprocess.CompletedProcess[str]:
    return run_fanwise(*args, env={"OPENAI_API_KEY": None, "COLUMNS": "100"})


def rows(page: str) -> list[str]:
    return re.findall(r'<g class="call [^"]+" data-index="\d+">', page)


@pytest.fixture
def recorded_run(tmp_path: Path) -> Path:
    """One travel run (one retried call) with its --report, journaled as run 1."""
    report = tmp_path / "live.html"
    done = fanwise(
        "travel", "Kyoto", "--offline-latency", "0.01,0.05", "--offline-fail-rate", "0.3",
        "--seed", "3", "--report", str(report),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "⏳ Retrying" in done.stderr, "the seed is chosen so that a call is retried"
    return report


def test_show_timeline_draws_every_call_on_one_axis(recorded_run: Path) -> None:
    """Three research rows and the synthesis, retries marked, with the axis and the legend."""
    done = fanwise("show", "1", "--timeline")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.match(r"^\s+0(\.0+)? s ", lines[0]), "the axis comes first"
    bars = [line for line in lines if re.match(r"^\s+(\d|S) ", line)]
    assert [line.split()[0] for line in bars] == ["1", "2", "3", "S"]
    assert sum("x" in line.split("|")[1] for line in bars) >= 1, "a failed attempt is marked"
    assert "2 tries" in done.stdout and lines[-1].startswith("legend: # attempt")
    assert all(len(line) <= 100 for line in lines[:-1])


def test_report_from_the_journal_matches_the_live_one(recorded_run: Path, tmp_path: Path) -> None:
    """``fanwise report 1`` rebuilds the same timeline rows as ``--report`` wrote during the run."""
    out = tmp_path / "again.html"
    done = fanwise("report", "1", "-o", str(out))
    assert done.returncode == 0, done.stderr
    again, live = out.read_text(encoding="utf-8"), recorded_run.read_text(encoding="utf-8")
    assert rows(again) == rows(live) and len(rows(again)) == 4
    assert again.count('class="attempt failed"') == live.count('class="attempt failed"') >= 1
    assert "run 1" in again and "<title>Kyoto: travel guide</title>" in again


def test_a_batch_run_gets_a_report_too(tmp_path: Path) -> None:
    """A batch (no synthesis) is reported call by call: with --report, and from the journal."""
    source = tmp_path / "in.jsonl"
    lines = [json.dumps({"custom_id": f"c{n}", "prompt": f"Question {n}?"}) for n in range(5)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    live = tmp_path / "live.html"
    batch = fanwise(
        "batch", str(source), "-o", str(tmp_path / "out.jsonl"), "--offline-latency", "0,0.01",
        "--report", str(live),
    )  # fmt: skip
    assert batch.returncode == 0, batch.stderr
    out = tmp_path / "batch.html"
    assert fanwise("report", "1", "-o", str(out)).returncode == 0
    page = out.read_text(encoding="utf-8")
    assert len(rows(page)) == 5 and "synthesis" not in "".join(rows(page))
    assert rows(page) == rows(live.read_text(encoding="utf-8"))


def test_unknown_runs_and_paths_are_one_line_errors(tmp_path: Path) -> None:
    """No such run, or nowhere to write: exit 2 with a message, never a traceback."""
    Journal.open(journal_path()).close()  # a journal without run 42 (report never creates one)
    missing = fanwise("report", "42", "-o", str(tmp_path / "r.html"))
    assert missing.returncode == 2 and "no run 42 in the journal" in missing.stderr
    timeline = fanwise("show", "42", "--timeline")
    assert timeline.returncode == 2 and "Traceback" not in timeline.stderr
