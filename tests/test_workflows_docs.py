"""docs/workflows.md: every plan on the page and its Python example run as written, offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = (Path(__file__).parent.parent / "docs" / "workflows.md").read_text("utf-8")
PLANS = re.findall(r"^```toml\n(.*?)^```$", PAGE, re.M | re.S)
KINDS = {
    "chain": "prompt",
    "questions": "questions",
    "map": "map",
    "route": "route",
    "vote": "vote",
}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}
    env["FANWISE_HOME"] = str(cwd)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_page_has_a_plan_for_every_stage_kind() -> None:
    """One TOML plan per kind: chain, questions, map, route, vote."""
    titles = [re.search(r'^title = "(\w+)"', plan, re.M) for plan in PLANS]
    assert [t[1] for t in titles if t] == list(KINDS)


@pytest.mark.parametrize("plan", PLANS, ids=list(KINDS))
def test_each_plan_runs_offline(plan: str, tmp_path: Path) -> None:
    """Each plan runs on the offline model, exit 0, and has a stage of its kind that ran."""
    (tmp_path / "plan.toml").write_text(plan, encoding="utf-8")
    flags = ["--provider", "offline", "--offline-latency", "0,0", "--json", "--quiet"]
    done = run(["-m", "fanwise", "run", "plan.toml", *flags, "--retries", "5"], tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    kind = KINDS[data["title"]]
    assert any(s["kind"] == kind and s["status"] == "fulfilled" for s in data["stages"])
    assert data["status"] == "complete" and data["text"]


def test_the_python_example_runs(tmp_path: Path) -> None:
    """The page's Python block exits 0 with no key and prints each stage and the status."""
    [code] = re.findall(r"^```python\n(.*?)^```$", PAGE, re.M | re.S)
    done = run(["-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["outline", "district", "guide"]
    assert lines[-1] == "complete"
