"""The HTML report of a staged run: one self-contained page, each stage drawn as a group.

A group says what the stage was (a map's width, a route's choice, a vote's tally), lists its
calls with their status, and for a citing stage which answers it cited and which failures it
disclosed. Model text is untrusted: Markdown goes through the same safe renderer as the
workflow report, everything else through ``html.escape``.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fanwise.html_report import CSP, markdown
from fanwise.prices import format_usd
from fanwise.stages import cite
from fanwise.stages.result import StagedResult, StageResult, group
from fanwise.stages.template import as_text

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
.stage{border:1px solid #ccc;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
.fulfilled{border-left:6px solid #2a2}.partial{border-left:6px solid #db2}
.failed{border-left:6px solid #c22}.skipped,.not_chosen{border-left:6px solid #999;opacity:.7}
.call{margin:.25rem 0}.rejected{color:#c22}details summary{cursor:pointer}
"""


def to_html(result: StagedResult, *, cost: float | None = None) -> str:
    title = escape(result.workflow.title)
    text = result.text
    body = markdown(text) if text else f"<p><em>No result: {escape(result.reason or '')}</em></p>"
    price = f" · {escape(format_usd(cost))}" if cost is not None else ""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">",
        f"<title>{title}</title><style>{STYLE}</style></head><body>",
        f"<h1>{title}</h1><p>{escape(result.workflow.topic)} · status "
        f"<b>{escape(result.status.value)}</b>{price}</p>",
        "<h2>Stages</h2>",
        *(_stage(stage) for stage in result.stages),
        f"<h2>Result</h2><div class='result'>{body}</div></body></html>",
    ]
    return "\n".join(parts)


def _stage(stage: StageResult) -> str:
    head = (
        f"<h3>{escape(stage.name)} <small>{escape(group(stage))} · "
        f"{escape(stage.status.value)}</small></h3>"
    )
    rows = []
    if stage.reason:
        rows.append(f"<p class='reason'>{escape(stage.reason)}</p>")
    if "citations" in stage.detail:
        rows.append(f"<p class='citations'>{escape(cite.summary(stage.detail['citations']))}</p>")
    for branch in stage.branches:
        if branch.outcome.status == "fulfilled":
            answer = escape(as_text(branch.data))
            rows.append(
                f"<details class='call'><summary>[{escape(branch.id)}] "
                f"{escape(branch.label[:120])}</summary><pre>{answer}</pre></details>"
            )
        else:
            error = getattr(branch.outcome, "message", "")
            rows.append(
                f"<div class='call rejected'>[{escape(branch.id)}] {escape(branch.label[:120])}: "
                f"{escape(branch.outcome.status)}: {escape(str(error))}</div>"
            )
    return f"<section class='stage {escape(stage.status.value)}'>{head}{''.join(rows)}</section>"


def write_stages_report(path: str | Path, result: StagedResult, *, cost: float | None) -> None:
    Path(path).write_text(to_html(result, cost=cost), encoding="utf-8")
