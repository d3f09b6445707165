"""The HTML report: one self-contained file (inline CSS and SVG, no script, no CDN) per run.

Model text is untrusted data. Plain text goes through ``html.escape``; Markdown is rendered by
markdown-it with raw HTML off (tags come out as text), images off (an offline page loads
nothing) and only safe link schemes. A Content-Security-Policy forbids every script and every
remote load as a second line of defence.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from importlib import resources
from typing import Any

from markdown_it import MarkdownIt

from fanwise.charts import gantt, histogram, throughput
from fanwise.outcome import Fulfilled
from fanwise.timeline import LEGEND, TimelineRow, rows_of
from fanwise.workflow import WorkflowResult

BIG_RUN = 60
"""Above this many calls the report draws a latency histogram and throughput, not one bar each."""

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)


def markdown(text: str) -> str:
    """Markdown to HTML with raw HTML disabled: ``<script>`` in model text stays text."""
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    md.disable("image")
    md.add_render_rule("link_open", _safe_link)
    return str(md.render(text))


def _safe_link(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return str(self.renderToken(tokens, idx, options, env))


def to_html(
    result: WorkflowResult,
    *,
    run_id: str | None = None,
    cost: float | None = None,
    created: str | None = None,
) -> str:
    """The whole report for a workflow run, as one HTML document."""
    rows = rows_of(result)
    title = f"{result.plan.topic}: {result.plan.title}"
    meta = [
        f"status <b>{escape(result.status.value)}</b>",
        f"model {escape(result.settings.model)}",
    ]
    if run_id:
        meta.append(f"run {escape(run_id)}")
    if created:
        meta.append(escape(created))
    body = [
        f"<header><h1>{escape(title)}</h1><p class='meta'>{' · '.join(meta)}</p></header>",
        _stats(result, cost),
        _timeline(rows),
        _synthesis(result),
        _answers(result),
        "<footer>made by fanwise · this page loads nothing and runs no script</footer>",
    ]
    css = resources.files("fanwise").joinpath("report.css").read_text(encoding="utf-8")
    return PAGE.format(csp=CSP, title=escape(title), css=css, body="\n".join(body))


def _stats(result: WorkflowResult, cost: float | None) -> str:
    stats = result.stats
    cards = [
        ("fulfilled", f"{stats.fulfilled}"),
        ("rejected", f"{stats.rejected}"),
        ("research wall time", f"{stats.wall_time:.2f} s"),
        ("sum of call times", f"{stats.sum_of_latencies:.2f} s"),
        ("speedup", f"{stats.speedup:.1f}×"),
        ("synthesis", f"{stats.synthesis_time:.2f} s" if result.synthesis else "none"),
        ("tokens", f"{stats.usage.total_tokens:,}"),
        ("cost", f"${cost:.4f}" if cost is not None else "unknown"),
    ]
    items = "".join(f"<div><dt>{name}</dt><dd>{escape(value)}</dd></div>" for name, value in cards)
    reason = f"<p class='reason'>{escape(result.reason)}</p>" if result.reason else ""
    return f"<section id='stats'><h2>Stats</h2><dl class='cards'>{items}</dl>{reason}</section>"


def _timeline(rows: Sequence[TimelineRow]) -> str:
    calls = [r for r in rows if not r.synthesis]
    if len(calls) <= BIG_RUN:
        legend = "".join(
            f"<span class='key {kind}'></span>{escape(text)} "
            for kind, text in (
                ("ok", "attempt"),
                ("failed", "failed attempt"),
                ("wait", "waiting to retry"),
                ("synthesis", "synthesis"),
            )
        )
        chart = f"<p class='legend'>{legend}</p>{gantt(rows)}"
    else:
        origin = min(r.start for r in rows)
        chart = histogram([r.outcome.latency for r in calls]) + throughput(
            [r.end for r in calls], origin
        )
        synthesis = [r for r in rows if r.synthesis]
        if synthesis:
            chart += gantt(synthesis)
    return (
        f"<section id='timeline'><h2>Timeline</h2>"
        f"<p class='hint'>{len(calls)} calls on one time axis; hover a bar for details. "
        f"{escape(LEGEND) if len(calls) > BIG_RUN else ''}</p>{chart}</section>"
    )


def _synthesis(result: WorkflowResult) -> str:
    if result.text is not None:
        content = markdown(result.text)
    else:
        content = (
            f"<p class='reason'>No {escape(result.plan.title)}: {escape(result.reason or '')}</p>"
        )
    heading = escape(result.plan.title.capitalize())
    return (
        f"<section id='synthesis'><h2>{heading}</h2>"
        f"<article class='guide'>{content}</article></section>"
    )


def _answers(result: WorkflowResult) -> str:
    items = []
    open_ = " open" if len(result.answers) <= 5 else ""
    for number, answer in enumerate(result.answers, 1):
        outcome = answer.outcome
        if isinstance(outcome, Fulfilled):
            status = "cached" if outcome.cached else "fulfilled"
            content = markdown(outcome.value.text)
        else:
            status = "rejected"
            content = f"<p class='error'>{escape(str(outcome.kind))}: {escape(outcome.message)}</p>"
        attempts = "".join(
            f"<tr><td>{a.number}</td><td>{a.started:.2f} s</td><td>{a.duration:.2f} s</td>"
            f"<td>{a.waited:.2f} s</td><td>{escape(_error(a.error))}</td></tr>"
            for a in outcome.attempts
        )
        table = (
            "<table class='attempts'><tr><th>attempt</th><th>started</th><th>took</th>"
            f"<th>waited before</th><th>error</th></tr>{attempts}</table>"
            if attempts
            else ""
        )
        items.append(
            f"<details class='answer {status}'{open_}><summary><span class='n'>{number}</span> "
            f"{escape(answer.question)} <span class='badge {status}'>{status} · "
            f"{outcome.latency:.2f} s</span></summary>{content}{table}</details>"
        )
    return f"<section id='answers'><h2>Answers</h2>{''.join(items)}</section>"


def _error(error: dict[str, Any] | None) -> str:
    if error is None:
        return ""
    return f"{error.get('kind', 'error')}: {error.get('message', '')}"


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
</body>
</html>
"""
