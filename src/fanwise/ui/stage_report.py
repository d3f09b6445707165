"""The HTML report of a staged run: one self-contained page, each stage drawn as a group.

A group says what the stage was (a map's width, a route's choice, a vote's tally) and how it
ended, lists its calls, and for a citing stage which answers it cited and which failures it
disclosed; above them, every call on one time axis. The page is the workflow report's (same
CSS, same Content-Security-Policy, no script); model text is untrusted, so Markdown goes
through its safe renderer and everything else through ``html.escape``. ``from_journal`` draws
the same page for ``fanwise report RUN`` from the journal alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from fanwise.context import cache_summary
from fanwise.outcome import Fulfilled, Rejected
from fanwise.prices import shown_cost
from fanwise.stages import cite
from fanwise.stages.model import Workflow
from fanwise.stages.result import Branch, StagedResult, group
from fanwise.stages.template import as_text
from fanwise.ui.html_report import _page, _timeline, markdown
from fanwise.ui.timeline import TimelineRow


@dataclass(frozen=True, slots=True)
class Group:
    """One stage as the page shows it."""

    name: str
    what: str  # map ×3, route → food, vote ×5 (A: 3, B: 2)
    status: str
    reason: str | None
    branches: Sequence[Branch]
    citations: Mapping[str, Any] | None = None


def to_html(
    result: StagedResult,
    *,
    cost: float | str | None = None,
    run_id: str | None = None,
    cache: Mapping[str, Any] | None = None,
) -> str:
    groups = [
        Group(r.name, group(r), r.status.value, r.reason, r.branches, r.detail.get("citations"))
        for r in result.stages
    ]
    from fanwise.ui.stage_show import stage_rows

    rows = stage_rows(result)
    return _render(result.workflow, result.status.value, result.reason, result.text, groups, rows,
                   cost=cost, run_id=run_id, cache=cache)  # fmt: skip


def from_journal(
    workflow: Workflow,
    calls: Iterable[tuple[int, str, Fulfilled[Any] | Rejected]],
    *,
    status: str,
    reason: str | None,
    summary: Mapping[str, Any],
    cost: float | str | None = None,
    run_id: str | None = None,
) -> str:
    """The page from a journaled run: its calls (index, label, outcome) grouped by stage (and
    what the prompt cache saved, from the run's ``summary``)."""
    from fanwise.ui.stage_show import stage_of

    ordered = sorted(calls, key=lambda c: c[0])
    told = {s["name"]: s for s in summary.get("stages") or []}
    groups = []
    for stage in workflow.stages:
        mine = [c for c in ordered if stage_of(workflow, c[1]) is stage]
        fan = stage.kind in ("questions", "map", "vote")
        branches = [
            Branch(f"{stage.name}.{n}" if fan else stage.name, label, outcome)
            for n, (_, label, outcome) in enumerate(mine, 1)
        ]
        seen = told.get(stage.name, {})
        what = seen.get("group", stage.kind)
        groups.append(Group(stage.name, what, seen.get("status", "?"), None, branches))
    rows = [TimelineRow(n, label, outcome) for n, (_, label, outcome) in enumerate(ordered)]
    last = next((g for g in reversed(groups) if g.branches), None)
    final = last.branches[-1].outcome if last is not None else None
    text = final.value.text if isinstance(final, Fulfilled) else None
    cache = summary.get("cache")
    return _render(workflow, status, reason, text, groups, rows, cost=cost, run_id=run_id,
                   cache=cache)  # fmt: skip


def _render(
    workflow: Workflow,
    status: str,
    reason: str | None,
    text: str | None,
    groups: Sequence[Group],
    rows: Sequence[TimelineRow],
    *,
    cost: float | str | None,
    run_id: str | None,
    cache: Mapping[str, Any] | None = None,
) -> str:
    price = f" · {escape(shown_cost(cost))}" if cost is not None else ""
    cached = cache_summary(cache)
    price += f" · prompt cache: {escape(cached)}" if cached is not None else ""
    run = f" · run {escape(run_id)}" if run_id else ""
    meta = f"{escape(workflow.topic)} · status <b>{escape(status)}</b>{price}{run}"
    body = markdown(text) if text else f"<p><em>No result: {escape(reason or '')}</em></p>"
    sections = [
        f"<section id='synthesis'><h2>Result</h2>{body}</section>",
        "<section id='stages'><h2>Stages</h2>" + "".join(map(_group, groups)) + "</section>",
    ]
    if rows:
        sections.append(_timeline(rows))
    return _page(workflow.title, meta, *sections)


def _group(stage: Group) -> str:
    head = (
        f"<h3>{escape(stage.name)} <small>{escape(stage.what)} · "
        f"{escape(stage.status)}</small></h3>"
    )
    parts = []
    if stage.reason:
        parts.append(f"<p class='reason'>{escape(stage.reason)}</p>")
    if stage.citations is not None:
        parts.append(f"<p class='citations'>{escape(cite.summary(dict(stage.citations)))}</p>")
    for branch in stage.branches:
        label = f"[{escape(branch.id)}] {escape(branch.label[:120])}"
        if isinstance(branch.outcome, Fulfilled):
            answer = escape(as_text(branch.data))
            parts.append(
                f"<details class='call'><summary>{label}</summary><pre>{answer}</pre></details>"
            )
        else:
            error = f"{branch.outcome.kind.value}: {branch.outcome.message}"
            parts.append(f"<div class='call rejected'>{label}: {escape(error)}</div>")
    return f"<article class='stage {escape(stage.status)}'>{head}{''.join(parts)}</article>"


def write_stages_report(
    path: str | Path,
    result: StagedResult,
    *,
    cost: float | str | None,
    run_id: str | None = None,
    cache: Mapping[str, Any] | None = None,
) -> None:
    page = to_html(result, cost=cost, run_id=run_id, cache=cache)
    Path(path).write_text(page, encoding="utf-8")
