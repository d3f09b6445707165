"""``fanwise run`` on plans of ``[[stage]]`` tables: counts, cache, kill -9 and resume, errors.

Each test drives a real ``fanwise`` process against a simulator process; the simulator's
per-prompt attempt counts prove which calls were sent.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SimulatorProcess
from tests.test_crash_safety import start, wait_for

THREE = """
title = "districts"
topic = "{city}"
[variables]
city = "Lyon"

[[stage]]
name = "outline"
prompt = "List the districts of {city}."
schema = "outline.schema.json"
required = true

[[stage]]
name = "district"
map = "outline.districts"
prompt = "Describe district {index} of {city}: {item}"

[[stage]]
name = "guide"
prompt = "Write the guide to {city} from:\\n{district}"
cite = true
"""


def stats(sim: SimulatorProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sim.url}/_stats", timeout=10) as response:
        data: dict[str, Any] = json.load(response)
    return data


def plan(tmp_path: Path, count: int) -> Path:
    """The three-stage plan, its outline a list of ``count`` districts (a schema file)."""
    items = {"type": "array", "items": {"type": "string"}, "minItems": count, "maxItems": count}
    schema = {"type": "object", "properties": {"districts": items}, "required": ["districts"]}
    (tmp_path / "outline.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    path = tmp_path / "plan.toml"
    path.write_text(THREE, encoding="utf-8")
    return path


def run(*args: str, base_url: str = "") -> tuple[int, str, str]:
    process = start(*args, base_url=base_url)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def test_three_stages_send_five_requests_and_a_cached_rerun_sends_none(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """A list of 3, a map over it, a final stage: 1 + 3 + 1 requests; with --cache, 0 more."""
    sim = spawn_simulator()
    journal = ["--journal", str(tmp_path / "j.db"), "--quiet"]
    code, first, err = run("run", str(plan(tmp_path, 3)), *journal, "--json", base_url=sim.base_url)
    assert code == 0, err
    assert stats(sim)["requests"] == 5
    data = json.loads(first)
    assert [s["status"] for s in data["stages"]] == ["fulfilled"] * 3
    assert data["stages"][1]["width"] == 3
    assert "citations" in data["stages"][2]
    code, again, err = run(
        "run", str(plan(tmp_path, 3)), *journal, "--json", "--cache", base_url=sim.base_url
    )
    assert code == 0, err
    assert stats(sim)["requests"] == 5, "the cached re-run sent requests"
    assert json.loads(again)["text"] == data["text"]
    assert json.loads(again)["stats"]["cached"] == 5
    code, timeline, err = run("show", "1", "--timeline", "--journal", str(tmp_path / "j.db"))
    assert code == 0, err
    assert "── district: map ×3, fulfilled" in timeline
    assert timeline.index("── outline") < timeline.index("── district") < timeline.index("── guide")
    page = tmp_path / "report.html"
    code, _, err = run("report", "1", "-o", str(page), "--journal", str(tmp_path / "j.db"))
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    assert "district <small>map ×3 · fulfilled</small>" in html
    assert "[district.3]" in html and '<svg class="gantt"' in html


def map_prompts(journal: Path) -> set[str]:
    if not journal.exists():
        return set()
    db = sqlite3.connect(journal, timeout=10)
    try:
        rows = db.execute("SELECT label FROM calls WHERE status = 'fulfilled'").fetchall()
    except sqlite3.OperationalError:
        return set()
    finally:
        db.close()
    prefix = "district: "  # a map call's label: its stage, then its prompt
    return {label.removeprefix(prefix) for (label,) in rows if label.startswith(prefix)}


@pytest.mark.slow
def test_kill_9_during_a_map_then_resume_resends_no_finished_call(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """Killed mid-map, the resume sends 0 finished calls and prints what a clean run prints."""
    sim = spawn_simulator("--latency", "uniform:0.1,0.3")
    path, journal = plan(tmp_path, 12), tmp_path / "j.db"
    flags = ["--journal", str(journal), "-c", "3", "--retries", "0", "--quiet"]
    process = start("run", str(path), *flags, base_url=sim.base_url)
    wait_for(lambda: len(map_prompts(journal)) >= 4)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    before = map_prompts(journal)
    assert 4 <= len(before) < 12

    resumed = start("resume", "1", "--journal", str(journal), "--json", "--quiet")
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    attempts = stats(sim)["attempts"]
    assert all(attempts[prompt] == 1 for prompt in before), "a finished call was sent again"
    outline = [p for p in attempts if p.startswith("List the districts")]
    assert [attempts[p] for p in outline] == [1], "the outline was asked again"
    assert sum(n for p, n in attempts.items() if p.startswith("Describe")) <= 12 + 3

    code, clean, err = run(
        "run", str(path), "--no-journal", "--json", "--quiet", base_url=sim.base_url
    )
    assert code == 0, err
    assert json.loads(out)["text"] == json.loads(clean)["text"]


def test_the_built_in_city_districts_plan_runs_offline(tmp_path: Path) -> None:
    """``fanwise run city-districts --set city=Lyon`` maps the districts and cites them."""
    code, out, err = run(
        "run", "city-districts", "--set", "city=Lyon", "--provider", "offline",
        "--offline-latency", "0,0.01", "--no-journal", "--plain", "--retries", "5",
    )  # fmt: skip
    assert code == 0, err
    assert "▶ stage district: map ×" in err
    assert "citations: cited" in out and "Lyon" in out


def test_the_offline_city_districts_plan_maps_distinct_districts() -> None:
    """Offline, the outline lists different districts, so each map call asks about its own."""
    code, out, err = run(
        "run", "city-districts", "--set", "city=Lyon", "--provider", "offline",
        "--offline-latency", "0,0", "--no-journal", "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    outline, district, _ = json.loads(out)["stages"]
    districts = outline["value"]["districts"]
    assert len(districts) >= 3 and len(set(districts)) == len(districts), districts
    labels = [call["label"] for call in district["calls"]]
    assert len(labels) == len(districts) and len(set(labels)) == len(labels), labels


def test_a_bad_stage_is_refused_with_its_file_and_line(tmp_path: Path) -> None:
    """A placeholder naming no earlier stage: exit 2, file:line, no traceback, no request."""
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[stage]]\nname = "a"\nprompt = "x"\n\n[[stage]]\nname = "b"\nprompt = "{nope}"\n'
    )
    code, _, err = run("run", str(path), "--provider", "offline", "--no-journal")
    assert code == 2
    assert f"{path}:7: stage 'b': {{nope}} is not an earlier stage" in err
    assert "Traceback" not in err
    path.write_text('[[stage]]\nname = "a"\nprompt = "x"\nvote = "five"\n')
    code, _, err = run("run", str(path), "--provider", "offline", "--no-journal")
    assert code == 2 and f"{path}:4: 'vote' must be a whole number" in err
    path.write_text('[[stage]]\nname = "a"\nprompt = "x"\n')
    code, _, err = run("run", str(path), "--provider", "offline", "--mode", "all")
    assert code == 2 and "--mode all: a plan of stages sets its schemas" in err
    code, _, err = run("run", str(path), "--provider", "offline", "--engine", "batch")
    assert code == 2 and "needs the OpenAI Batch API" in err and "Traceback" not in err


def ledger_states(journal: Path) -> list[str]:
    """The ``batches`` rows' states, oldest first (empty until the table exists)."""
    if not journal.exists():
        return []
    db = sqlite3.connect(journal, timeout=10)
    try:
        return [state for (state,) in db.execute("SELECT state FROM batches ORDER BY id")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


@pytest.mark.slow
def test_stages_on_the_batch_api_resume_a_killed_run_without_a_second_batch(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """--engine batch: one batch a stage; killed while the map's batch runs, the resume
    collects that batch (no second one) and ends as a clean run would."""
    from openai import OpenAI

    sim = spawn_simulator("--batch-speed", "300", "--batch-duration", "600")  # ~2 s a batch
    path, journal = plan(tmp_path, 3), tmp_path / "j.db"
    flags = ["--journal", str(journal), "--engine", "batch", "--batch-poll", "0.05", "--quiet"]
    process = start("run", str(path), *flags, base_url=sim.base_url)
    wait_for(lambda: ledger_states(journal) == ["collected", "submitted"])
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)

    resumed = start("resume", "1", "--journal", str(journal), "--json", "--quiet")
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    data = json.loads(out)
    assert [s["status"] for s in data["stages"]] == ["fulfilled"] * 3
    assert ledger_states(journal) == ["collected"] * 3
    with OpenAI(api_key="t", base_url=sim.base_url, max_retries=0) as client:
        assert len(client.batches.list(limit=100).data) == 3, "a stage's batch was made twice"
