"""A staged run as a person reads it: stage lines, the Markdown result, the ASCII timeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fanwise.stages import cite
from fanwise.stages.model import Stage, Workflow
from fanwise.stages.result import StagedResult, StageStatus, group
from fanwise.ui.plain import STAGE_ICONS
from fanwise.ui.timeline import TimelineRow, ascii_timeline

ICONS = STAGE_ICONS


def to_markdown(result: StagedResult, *, text: bool = True) -> str:
    """The final stage's text, then a short account of every stage (``text=False``: only the
    account, after a final stage already streamed to stdout)."""
    lines = [""]  # after the streamed text: a blank line
    if text and result.text:  # the final stage's text as it streams: no heading of ours
        lines = [result.text.strip(), ""]
    elif text:
        title = result.workflow.title
        lines = [f"# {title}" + (f": {result.workflow.topic}" if result.workflow.topic else "")]
        lines += ["", f"_No result: {result.reason}_", ""]
    lines += ["## Stages", ""]
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


def stage_rows(result: StagedResult) -> list[TimelineRow]:
    """Every call of a staged result on one time axis, each labelled with its stage (the live
    report and a saved run's ``show --timeline`` and ``report`` draw these same rows)."""
    return [
        TimelineRow(
            n if b.index is None else b.index,
            f"{r.name}: {b.label}" if b.label != r.name else r.name,
            b.outcome,
        )
        for n, (r, b) in enumerate((r, b) for r in result.stages for b in r.branches)
    ]


def grouped_timeline(
    workflow: Workflow,
    rows: Sequence[TimelineRow],
    width: int = 100,
    groups: Mapping[str, str] | None = None,
) -> str:
    """The ASCII timeline of a staged run: each stage heads its calls, in the run's order.

    ``groups`` (from the run's summary) says what each stage was: ``map ×3``, ``route → food``,
    a vote's tally; without it the header says the kind and the number of calls.
    """
    rows = sorted(rows, key=lambda r: r.index)
    text = ascii_timeline(rows, width=width).splitlines()
    shown = text[1 : 1 + min(len(rows), 60)]
    lines: dict[str, list[str]] = {stage.name: [] for stage in workflow.stages}
    others: list[str] = []
    for row, line in zip(rows, shown, strict=False):
        stage = stage_of(workflow, row.label)
        (lines[stage.name] if stage is not None else others).append(line)
    out = text[:1]
    for stage in workflow.stages:
        calls = lines[stage.name]
        what = (groups or {}).get(stage.name)
        if what is None:
            what = stage.kind + (f" ×{len(calls)}" if len(calls) > 1 else "")
        out.append(f"── {stage.name}: {what} " + "─" * 20)
        out += calls
    return "\n".join([*out, *others, *text[1 + len(shown) :]]) + "\n"


def stage_of(workflow: Workflow, label: str) -> Stage | None:
    """A call's stage, from its label (``name``, ``name: prompt``, ``name #2``, ``name judge``)."""
    for stage in workflow.stages:
        if label == stage.name or label.startswith((f"{stage.name}:", f"{stage.name} ")):
            return stage
    return None
