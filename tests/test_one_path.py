"""One workflow model: one runner, one result type, one status, one CLI path for every kind."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pydantic import BaseModel

import fanwise
from fanwise import OfflineSettings
from fanwise.cli import cli
from tests.conftest import SimulatorProcess

FAST = ("--offline-latency", "0,0.01")
NO_KEY = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}
SRC = Path(fanwise.__file__).parent


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI in-process with no key in the environment (or ``env`` laid over that)."""
    return CliRunner().invoke(cli, list(args), env={**NO_KEY, **(env or {})})


def test_there_is_one_status_enum_and_one_result_type() -> None:
    """`Status` is the one run status everywhere; a staged result is a WorkflowResult; no
    module of the library defines a second run status."""
    from fanwise import stages, workflow

    assert fanwise.Status is stages.Status is workflow.Status
    assert fanwise.StagedResult is fanwise.WorkflowResult is stages.WorkflowResult
    definitions = [
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if re.search(r"^class (Run)?Status\b", path.read_text(encoding="utf-8"), re.M)
    ]
    assert definitions == ["stages/result.py"]
    assert not any("RunStatus" in p.read_text(encoding="utf-8") for p in SRC.rglob("*.py"))


class Guide(BaseModel):
    title: str
    sights: list[str]


def test_a_research_plan_is_a_two_stage_workflow_with_a_parsed_synthesis() -> None:
    """fanwise.research runs the plan's two stages (research, synthesis) on the one runner;
    ``result.parsed`` is the synthesis's structured value."""
    result = fanwise.research(
        "Kyoto",
        ["Which temples?", "Which trains?"],
        provider="offline",
        offline=OfflineSettings(latency=(0, 0.01)),
        synthesis_schema=Guide,
    )
    assert [s.name for s in result.stages] == ["research", "synthesis"]
    assert [s.stage.kind for s in result.stages] == ["questions", "prompt"]
    assert [a.question for a in result.answers] == ["Which temples?", "Which trains?"]
    assert isinstance(result.parsed, Guide)
    assert result.parsed == result.synthesis.value.parsed  # type: ignore[union-attr]
    assert result.to_dict()["synthesis"]["parsed"] == result.parsed.model_dump()


def test_a_plan_of_stages_exposes_its_last_answer_parsed() -> None:
    """A plan of stages whose last stage has a schema: ``result.parsed`` is its value."""
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
    }
    workflow = fanwise.Workflow(
        (fanwise.Stage("pick", prompt="Name one district of Lyon.", schema=schema),)
    )
    result = fanwise.run(workflow, provider="offline", offline=OfflineSettings(latency=(0, 0)))
    assert isinstance(result.parsed, dict) and isinstance(result.parsed["name"], str)
    plain = fanwise.run(
        fanwise.Workflow((fanwise.Stage("say", prompt="Hello."),)),
        provider="offline",
        offline=OfflineSettings(latency=(0, 0)),
    )
    assert plain.parsed is None and plain.text


@pytest.mark.parametrize(
    "args", [("research", "Kyoto", "-q", "Which temples?"), ("run", "city-districts")]
)
def test_every_call_refused_for_the_key_is_exit_2_for_every_kind(
    spawn_simulator: Callable[..., SimulatorProcess], args: tuple[str, ...]
) -> None:
    """A research plan and a plan of stages alike: every call 401 → exit 2 (fix the key)."""
    sim = spawn_simulator("--fail", "401=1")
    result = invoke(
        *args, "--quiet", "--no-journal", "--base-url", sim.base_url,
        env={"OPENAI_API_KEY": "wrong"},
    )  # fmt: skip
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize(
    "args", [("travel", "Kyoto"), ("run", "city-districts", "--set", "city=Lyon")]
)
def test_an_output_that_fails_after_the_run_is_exit_1_for_every_kind(
    args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out or --report that cannot be written once the calls are paid for: the line that
    says where the result is kept, exit 1 (not 2, not a traceback), for each kind of plan."""
    out, report = tmp_path / "guide.md", tmp_path / "guide.html"
    real = Path.write_text

    def full_disk(self: Path, *rest: Any, **kwargs: Any) -> int:
        if self in (out, report):
            raise OSError(28, "No space left on device")
        return real(self, *rest, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    for flag, path, command in (("--out", out, "show"), ("--report", report, "report")):
        result = invoke(*args, *FAST, "--quiet", flag, str(path))
        assert result.exit_code == 1, (args, flag, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "No space left on device; the result is kept in the journal" in result.stderr
        assert re.search(rf"fanwise {command} \d+ -o FILE", result.stderr), result.stderr


def test_fanwise_run_takes_a_research_plan_too() -> None:
    """fanwise.run(Plan) runs the plan's two stages on the one runner, journaled, as
    fanwise.research does: the same document, its run id included."""
    plan = fanwise.Plan("Kyoto", ("Which temples?", "Which trains?"))
    result = fanwise.run(
        plan, provider="offline", offline=OfflineSettings(latency=(0, 0.01)), journal=True
    )
    assert [s.name for s in result.stages] == ["research", "synthesis"]
    assert result.status is fanwise.Status.COMPLETE and result.text
    document = result.to_dict()
    assert isinstance(document["run"]["id"], int)
    assert [q["question"] for q in document["questions"]] == list(plan.questions)


def test_a_batch_with_every_call_refused_for_the_key_is_exit_2(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """fanwise batch follows the same rule: every settled call refused with 401 → exit 2."""
    sim = spawn_simulator("--fail", "401=1")
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "hi"}\n{"prompt": "there"}\n')
    result = invoke(
        "batch", str(source), "-o", str(tmp_path / "out.jsonl"), "--quiet", "--no-journal",
        "--base-url", sim.base_url, env={"OPENAI_API_KEY": "wrong"},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
