"""A saved run's views equal the live run's: ``show --json`` is the document ``--json``
printed, and ``show``, ``report``, ``runs`` and ``export`` agree with it, for each kind of
workflow."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanwise.stages import cite
from tests.conftest import SimulatorProcess
from tests.processes import run_fanwise

TIMING = {
    "latency",
    "started",
    "finished",
    "wall_time",
    "sum_of_latencies",
    "service_time",
    "queue_time",
    "speedup",
    "overlap",
    "sequential",
    "synthesis_time",
}
"""Fields that say when or how fast, rounded at print time: the rest must be equal."""

README = Path(__file__).parents[1] / "README.md"


def untimed(value: Any) -> Any:
    """``value`` without its timing fields, at any depth."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def readme_plan() -> str:
    """The README's plan file, the one with ``models = ["gpt-5", "claude-sonnet-4-5"]``."""
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (plan,) = [b for b in blocks if '"claude-sonnet-4-5"' in b and "[research]" in b]
    return str(plan)


@pytest.fixture
def fanwise(
    spawn_simulator: Callable[..., SimulatorProcess],
) -> Callable[..., Any]:
    """``fanwise ARGS`` against one simulator serving OpenAI's and Anthropic's APIs."""
    sim = spawn_simulator()
    env: dict[str, str | None] = {
        "OPENAI_API_KEY": "k",
        "ANTHROPIC_API_KEY": "k",
        "OPENAI_BASE_URL": sim.base_url,
        "ANTHROPIC_BASE_URL": sim.url,
        "FANWISE_MODEL": None,
    }

    def fanwise(*args: str, code: int = 0) -> str:
        done = run_fanwise(*args, env=env)
        assert done.returncode == code, (args, done.stderr)
        return done.stdout

    return fanwise


KINDS: dict[str, Callable[[Path], tuple[str, ...]]] = {
    "multi-model plan": lambda tmp: ("run", str(tmp / "plan.toml"), "--set", "city=Kyoto"),
    "staged plan": lambda tmp: ("run", "city-districts", "--set", "city=Lyon"),
    "travel": lambda tmp: ("travel", "Kyoto"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_saved_run_shows_what_the_live_run_printed(
    kind: str, fanwise: Callable[..., str], tmp_path: Path
) -> None:
    """show --json equals the live --json (timing aside; its run says more); show equals the
    live Markdown as streamed by default (and --no-stream prints it alike); the report and
    `runs` agree with the document."""
    (tmp_path / "plan.toml").write_text(readme_plan(), encoding="utf-8")
    args = KINDS[kind](tmp_path)
    live = json.loads(fanwise(*args, "--json", "--quiet", "--report", str(tmp_path / "a.html")))
    run_id = str(live["run"]["id"])
    shown = json.loads(fanwise("show", run_id, "--json"))
    assert untimed({**shown, "run": None}) == untimed({**live, "run": None})
    assert live["run"].items() <= shown["run"].items()
    assert shown["run"]["kind"] == ("stages" if kind == "staged plan" else "workflow")
    exported = json.loads(fanwise("export", run_id).splitlines()[0])["result"]
    assert untimed(exported) == untimed({k: v for k, v in live.items() if k not in ("run", "cost")})

    # the Markdown as a person sees it: streamed (the default), and --no-stream alike
    markdown = fanwise(*args, "--quiet")
    assert fanwise("show", str(int(run_id) + 1)) == markdown
    assert fanwise(*args, "--no-stream", "--quiet") == markdown

    fanwise("report", run_id, "-o", str(tmp_path / "b.html"))
    saved, printed = ((tmp_path / f"{n}.html").read_text(encoding="utf-8") for n in "ba")
    runs = {r["id"]: r for r in json.loads(fanwise("runs", "--json"))}[int(run_id)]
    if kind == "staged plan":
        final = live["stages"][-1]
        assert "## Stages" in markdown and "citations: cited" in markdown
        cited = cite.summary(final["citations"])
        assert cited in saved and cited in printed
        assert runs["research"]["fulfilled"] == live["stats"]["fulfilled"]
        return
    questions = live["questions"]
    assert len(questions) == live["stats"]["fulfilled"] + live["stats"]["rejected"]
    assert all(q["status"] == "fulfilled" for q in questions)
    assert runs["research"] == {"fulfilled": len(questions), "rejected": 0}
    assert runs["synthesis"] == "ok"
    assert markdown.strip() == live["synthesis"]["text"].strip()
    for page in (saved, printed):
        assert page.count('<g class="call') == len(questions) + 1  # one row a call
    if kind == "multi-model plan":
        asked = [q["question"] for q in questions]
        assert len(asked) == 4 and asked[-2:] == [
            "Is Kyoto safe at night? [gpt-5]",
            "Is Kyoto safe at night? [claude-sonnet-4-5]",
        ]
        assert live["model"] == "gpt-5"


NO_KEY: dict[str, str | None] = {"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None}
FAST = ("--offline-latency", "0,0.01")


def offline(*args: str) -> str:
    """``fanwise ARGS`` on the offline model (no key), which must succeed."""
    done = run_fanwise(*args, env={**NO_KEY, "ANTHROPIC_API_KEY": None, "FANWISE_MODEL": None})
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def forget_shapes() -> None:
    """Make every run in the journal look journaled before shapes were kept."""
    from fanwise.paths import journal_path

    with sqlite3.connect(journal_path()) as db:
        db.execute("UPDATE runs SET summary = json_remove(summary, '$.shape', '$.cost')")


def test_python_to_dict_is_the_document_with_its_run_and_cost() -> None:
    """``research(journal=True).to_dict()`` has the run's id and cost, and ``fanwise show RUN
    --json`` prints that same document."""
    import fanwise
    from fanwise import OfflineSettings

    result = fanwise.research(
        "Kyoto",
        ["Which temples?", "Which trains?"],
        provider="offline",
        offline=OfflineSettings(latency=(0, 0.01)),
        journal=True,
    )
    document = result.to_dict()
    assert isinstance(document["run"]["id"], int) and document["cost"]["usd"] >= 0
    assert document["run"]["resume"].startswith(f"fanwise resume {document['run']['id']}")
    shown = json.loads(offline("show", str(document["run"]["id"]), "--json"))
    assert untimed({**shown, "run": None}) == untimed({**document, "run": None})
    assert document["run"].items() <= shown["run"].items()


def test_a_run_journaled_before_shapes_is_rebuilt_from_its_plan(tmp_path: Path) -> None:
    """An older multi-model run (no shape kept) still shows each model's answer as a question
    and the synthesis as the synthesis; an older plan of stages shows its calls and says what
    it cannot show."""
    (tmp_path / "plan.toml").write_text(readme_plan(), encoding="utf-8")
    live = json.loads(
        offline("run", str(tmp_path / "plan.toml"), "--set", "city=Kyoto", "--json", *FAST)
    )
    offline("run", "city-districts", "--set", "city=Lyon", "--quiet", *FAST)
    forget_shapes()
    shown = json.loads(offline("show", str(live["run"]["id"]), "--json"))
    assert [q["question"] for q in shown["questions"]] == [q["question"] for q in live["questions"]]
    assert shown["synthesis"]["text"] == live["synthesis"]["text"]
    done = run_fanwise("show", str(live["run"]["id"] + 1), env=NO_KEY)
    assert done.returncode == 0 and "before fanwise kept each stage's shape" in done.stderr


def test_show_refuses_two_views_at_once() -> None:
    """`show RUN --json --timeline` is refused with one line and exit 2, not one flag ignored."""
    offline("travel", "Kyoto", "--quiet", *FAST)
    done = run_fanwise("show", "1", "--json", "--timeline", env=NO_KEY)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "fanwise: error: --json and --timeline are different views of a run: give one"
    ]
