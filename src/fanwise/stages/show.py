"""A staged run as a person reads it: stage lines, the Markdown result, the ASCII timeline."""

from __future__ import annotations

from fanwise.events import StageFinished, StageStarted
from fanwise.stages import cite
from fanwise.stages.result import StagedResult, StageResult, StageStatus

ICONS = {"fulfilled": "✅", "partial": "🟡", "failed": "❌", "skipped": "⏭", "not_chosen": "·"}


def stage_line(event: StageStarted | StageFinished) -> str:
    """``▶ stage districts: map ×5`` as it starts, ``✅ districts: 5 of 5 answered`` as it ends."""
    if isinstance(event, StageStarted):
        width = f" ×{event.total}" if event.kind in ("questions", "map", "vote") else ""
        return f"▶ stage {event.name}: {event.kind}{width}"
    note = f": {event.note}" if event.note else ""
    return f"{ICONS.get(event.status, '?')} {event.name} {event.status}{note}"


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


def timeline(result: StagedResult, width: int = 50) -> str:
    """An ASCII timeline of the stages: one bar per stage, on the run's time axis."""
    end = max((s.finished for s in result.stages), default=0.0) or 1.0
    rows = []
    for stage in result.stages:
        start = int(stage.started / end * width)
        length = max(1, int((stage.finished - stage.started) / end * width))
        bar = " " * start + "█" * length if stage.branches else " " * start + "·"
        rows.append(f"{stage.name[:14]:<14} |{bar:<{width}}| {group(stage)} {stage.status.value}")
    return "\n".join(rows) + "\n"
