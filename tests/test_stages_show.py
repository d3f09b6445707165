"""A staged run as people see it: citations by branch, stage groups in every view."""

from __future__ import annotations

import io
import json

from rich.console import Console

from fanwise.engine import Engine
from fanwise.events import (
    CallSettled,
    CallStarted,
    PhaseFinished,
    PhaseStarted,
    StageFinished,
    StageStarted,
)
from fanwise.models.base import Completion, DeltaSink, Request
from fanwise.outcome import Fulfilled, Rejected, ServerError
from fanwise.retry import RetryPolicy
from fanwise.stages import Stage, StagedResult, StageStatus, Workflow, run_stages
from fanwise.stages.result import group
from fanwise.ui.console import LiveConsole, PlainConsole
from fanwise.ui.stage_report import to_html
from fanwise.ui.stage_show import grouped_timeline, to_markdown
from fanwise.ui.timeline import TimelineRow
from tests.scripted import Reply, ScriptedModel

CITING = Workflow(
    (
        Stage("facts", questions=("Fact one?", "Fact two?", "Fact three?")),
        Stage("report", prompt="Write it up:\n{facts}", cite=True),
    ),
    title="facts",
)


class CitingModel(ScriptedModel):
    """Answers the citing stage with ``final``; other prompts as ``ScriptedModel`` does."""

    def __init__(self, final: str) -> None:
        super().__init__()
        self.final = final

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        if request.prompt.startswith("Write it up"):
            self.history.append(request)
            return Completion(self.final)
        return await super().complete(request, on_delta=on_delta)


async def run_citing(final: str) -> StagedResult:
    model = CitingModel(final)
    model.enqueue("Fact two?", Reply(error=ServerError("boom", status_code=500)))
    result = await run_stages(CITING, Engine(model, retry=RetryPolicy(retries=0)))
    prompt = model.history[-1].prompt
    assert "### [facts.2] Fact two?\n(failed: no answer, server)" in prompt
    assert "Cite the ids" in (model.history[-1].instructions or "")
    return result


async def test_citations_say_which_answers_were_cited_and_whether_failures_were_disclosed() -> None:
    """The citing stage's text cites facts.1 and names facts.2 as missing: facts.3 uncited."""
    result = await run_citing("One is true [facts.1]. Part two is missing [facts.2].")
    report = result.stage("report")
    assert report.status is StageStatus.FULFILLED
    assert report.detail["citations"] == {
        "cited": ["facts.1"],
        "not_cited": ["facts.3"],
        "failed": ["facts.2"],
        "failed_disclosed": ["facts.2"],
        "all_failures_disclosed": True,
    }
    data = json.loads(json.dumps(result.to_dict()))
    assert data["stages"][1]["citations"]["not_cited"] == ["facts.3"]
    assert "cited 1 of 2 answers (not cited: facts.3); 1 failed branches, all disclosed" in (
        to_markdown(result)
    )
    assert "not cited: facts.3" in to_html(result)


async def test_an_undisclosed_failure_is_reported() -> None:
    """A text that cites every answer but never names the failed branch is flagged."""
    result = await run_citing("All good [facts.1, facts.3].")
    citations = result.stage("report").detail["citations"]
    assert citations["all_failures_disclosed"] is False
    assert "not disclosed: facts.2" in to_markdown(result)


def ok() -> Fulfilled[Completion]:
    return Fulfilled(Completion("x"), 0.5, 0.0)


def test_the_live_view_prints_each_stage_as_a_line_between_its_frames() -> None:
    """Stage lines go above the live view, which is stopped while they print."""
    out = io.StringIO()
    live = LiveConsole(Console(file=out, width=100, color_system=None), clock=lambda: 0.0)
    live(StageStarted("district", "map", 2, 0.0))
    live(PhaseStarted("research", 2, 0.0))
    live(CallStarted(0, "k", "district: a", 1, 0.0))
    live(CallSettled(0, "k", "district: a", ok(), 0.5))
    live(PhaseFinished("research", 0.5))
    live(StageFinished("district", "map", "fulfilled", "2 of 2 answered", 0.5))
    assert live.live is None
    text = out.getvalue()
    assert text.index("▶ stage district: map ×2") < text.index("✅ district fulfilled: 2 of 2")


def test_plain_lines_show_a_route_choice_and_a_vote_tally() -> None:
    """The plain console prints each stage's end with its note."""
    out = io.StringIO()
    plain = PlainConsole(out)
    plain(StageFinished("pick", "route", "fulfilled", "chose food", 1.0))
    plain(StageFinished("best", "vote", "fulfilled", "tally A: 3, B: 2", 2.0))
    assert out.getvalue().splitlines() == [
        "✅ pick fulfilled: chose food",
        "✅ best fulfilled: tally A: 3, B: 2",
    ]


async def test_groups_and_the_timeline_show_a_map_width_and_a_vote_tally() -> None:
    """group() reads a map's width and a vote's tally; the timeline heads each stage."""
    model = ScriptedModel()
    model.enqueue("Pick?", *(Reply(a) for a in ("A", "B", "A")))
    model.enqueue("Name three.", Reply('{"names": ["x", "y", "z"]}'))
    names = {
        "type": "object",
        "properties": {"names": {"type": "array", "items": {"type": "string"}}},
        "required": ["names"],
    }
    workflow = Workflow(
        (
            Stage("list", prompt="Name three.", schema=names),
            Stage("each", map="list.names", prompt="About {item}"),
            Stage("best", prompt="Pick?", vote=3),
        )
    )
    result = await run_stages(workflow, Engine(model, concurrency=1))
    assert group(result.stage("each")) == "map ×3"
    assert group(result.stage("best")) == "vote ×3 (A: 2, B: 1)"
    rows = [TimelineRow(n, label, o) for n, (label, o) in enumerate(_labelled(result))]
    text = grouped_timeline(workflow, rows, width=100)
    assert "── each: map ×3" in text and "── best: vote ×3" in text
    assert text.index("── list: prompt") < text.index("── each: map") < text.index("── best")


def _labelled(result: StagedResult) -> list[tuple[str, Fulfilled[Completion] | Rejected]]:
    labels = {"list": "list", "each": "each: About", "best": "best #"}
    return [(labels[r.name], b.outcome) for r in result.stages for b in r.branches]


async def test_the_html_report_escapes_model_text_and_groups_each_stage() -> None:
    """An answer with a <script> tag stays text; each stage is a section with its group."""
    model = ScriptedModel()
    model.enqueue("Q?", Reply("<script>alert(1)</script>"))
    workflow = Workflow((Stage("facts", questions=("Q?", "R?")), Stage("end", prompt="{facts}")))
    result = await run_stages(workflow, Engine(model))
    page = to_html(result, cost=0.0)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<article class='stage fulfilled'><h3>facts <small>questions ×2" in page
    assert "script-src" not in page and "default-src 'none'" in page
