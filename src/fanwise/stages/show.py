"""A staged run as a person reads it: stage lines, the Markdown result, the ASCII timeline."""

from __future__ import annotations

from collections.abc import Sequence

from fanwise.plain import STAGE_ICONS
from fanwise.stages import cite
from fanwise.stages.model import Stage, Workflow
from fanwise.stages.result import StagedResult, StageResult, StageStatus
from fanwise.timeline import TimelineRow, ascii_timeline

ICONS = STAGE_ICONS


def group(result: StageResult) -> str:
    """What a stage was, as a group: a map's width, a route's choice, a vote's tally."""
    detail = result.detail
    kind = result.stage.kind
    if kind == "map" and "width" in detail:
        cut = f" of {detail['items']}" if detail["items"] != detail["width"] else ""
        return f"map ×{detail['width']}{cut}"
    if kind == "route" and "choice" in detail:
        return f"route → {detail['choice']}"
    if kind == "vote" and "tally" in detail:
        tally = ", ".join(f"{k[:30]}: {n}" for k, n in detail["tally"].items())
        return f"vote ×{len(result.branches)} ({tally})"
    if kind == "questions":
        return f"questions ×{len(result.branches)}"
    return kind


def to_markdown(result: StagedResult) -> str:
    """The final stage's text, then a short account of every stage."""
    lines = [
        f"# {result.workflow.title}"
        + (f": {result.workflow.topic}" if result.workflow.topic else ""),
        "",
    ]
    text = result.text
    lines += [text.strip() if text else f"_No result: {result.reason}_", "", "## Stages", ""]
    for stage in result.stages:
        answered = sum(b.outcome.status == "fulfilled" for b in stage.branches)
        calls = f", {answered} of {len(stage.branches)} calls answered" if stage.branches else ""
        why = (
            f" ({stage.reason})"
            if stage.reason and stage.status is not StageStatus.FULFILLED
            else ""
        )
        icon = ICONS[stage.status.value]
        lines.append(f"- {icon} **{stage.name}**: {group(stage)}, {stage.status.value}{calls}{why}")
        if "citations" in stage.detail:
            lines.append(f"  - citations: {cite.summary(stage.detail['citations'])}")
    return "\n".join(lines) + "\n"


def grouped_timeline(workflow: Workflow, rows: Sequence[TimelineRow], width: int = 100) -> str:
    """The ASCII timeline of a staged run, a header line above each stage's calls."""
    rows = sorted(rows, key=lambda r: r.index)
    text = ascii_timeline(rows, width=width).splitlines()
    out, shown = text[:1], text[1 : 1 + min(len(rows), 60)]
    stages = [_stage_of(workflow, row.label) for row in rows]
    current: Stage | None = None
    for stage, line in zip(stages, shown, strict=False):
        if stage is not None and stage is not current:
            current = stage
            width_of = sum(s is stage for s in stages)
            times = f" ×{width_of}" if width_of > 1 else ""
            out.append(f"── {stage.name}: {stage.kind}{times} " + "─" * 20)
        out.append(line)
    return "\n".join([*out, *text[1 + len(shown) :]]) + "\n"


def _stage_of(workflow: Workflow, label: str) -> Stage | None:
    """A call's stage, from its label (``name``, ``name: prompt``, ``name #2``, ``name judge``)."""
    for stage in workflow.stages:
        if label == stage.name or label.startswith((f"{stage.name}:", f"{stage.name} ")):
            return stage
    return None
