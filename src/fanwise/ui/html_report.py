"""The HTML report: one self-contained file (inline CSS and SVG, no script, no CDN) per run.

Model text is untrusted data. Plain text goes through ``html.escape``; Markdown is rendered by
markdown-it with raw HTML off (tags come out as text), images off (an offline page loads
nothing) and only safe link schemes. A Content-Security-Policy forbids every script and every
remote load as a second line of defence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from importlib import resources
from typing import Any

from markdown_it import MarkdownIt

from fanwise.context import cache_summary
from fanwise.models.base import Completion
from fanwise.outcome import Fulfilled, Rejected
from fanwise.prices import shown_cost
from fanwise.stages.research import Stats
from fanwise.stages.result import WorkflowResult
from fanwise.structured import outcome_usage
from fanwise.ui.charts import gantt, histogram, throughput
from fanwise.ui.timeline import TimelineRow, rows_of, span

BIG_RUN = 60
MAX_ANSWERS = 1000
"""A batch report lists this many answers; the rest stay in the journal, so the page stays light."""
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
    cost: float | str | None = None,
    created: str | None = None,
    cache: Mapping[str, Any] | None = None,
) -> str:
    """The whole report for a workflow run, as one HTML document (``cache``: what the prompt
    cache saved, ``CacheReport.to_dict()``)."""
    stats = result.stats
    cards = [
        ("fulfilled", f"{stats.fulfilled}"),
        ("rejected", f"{stats.rejected}"),
        ("research wall time", f"{stats.wall_time:.2f} s"),
        ("service time", f"{stats.service_time:.2f} s"),
        ("queued in the limiter", f"{stats.queue_time:.2f} s"),
        ("overlap", _speedup(stats)),
        ("synthesis", f"{stats.synthesis_time:.2f} s" if result.synthesis else "none"),
        ("tokens", f"{stats.usage.total_tokens:,}"),
        ("cost", shown_cost(cost) if cost is not None else "unknown"),
    ]
    cached = cache_summary(cache)
    if cached is not None:
        cards.append(("prompt cache", cached))
    meta = _meta(result.status.value, result.settings.model, run_id, created)
    return _page(
        f"{result.workflow.topic}: {result.workflow.title}",
        meta,
        _stats(cards, result.reason),
        _timeline(rows_of(result)),
        _synthesis(result),
        _answers([(a.question, a.outcome) for a in result.answers]),
    )


def _speedup(stats: Stats) -> str:
    """The card's figure: the calls' overlap as measured ("2.7 calls in flight on average:
    ..."), or in words why there is none; never a speed-up the client cannot tell."""
    return stats.speedup_text(times=False)


def calls_to_html(
    title: str,
    rows: Sequence[TimelineRow],
    *,
    status: str,
    reason: str | None = None,
    run_id: str | None = None,
    cost: float | str | None = None,
    created: str | None = None,
    extra: Sequence[tuple[str, str]] = (),
) -> str:
    """The report for a run of calls with no synthesis (a batch): stats, timeline, answers;
    ``extra`` cards after the stats (an auto run's paths, docs/deadline.md)."""
    done = [r.outcome for r in rows if isinstance(r.outcome, Fulfilled)]
    first, last = span(rows)
    wall = last - first
    stats = Stats.of([r.outcome for r in rows], wall_time=wall)
    tokens = sum(  # a refusal and an answer that broke its schema cost tokens too
        outcome_usage(r.outcome).total_tokens
        for r in rows
        if isinstance(r.outcome, Rejected)
        or (not r.outcome.cached and isinstance(r.outcome.value, Completion))
    )
    cards = [
        ("fulfilled", f"{len(done)}"),
        ("rejected", f"{len(rows) - len(done)}"),
        ("wall time", f"{wall:.2f} s"),
        ("service time", f"{stats.service_time:.2f} s"),
        ("queued in the limiter", f"{stats.queue_time:.2f} s"),
        ("overlap", _speedup(stats)),
        ("tokens", f"{tokens:,}"),
        ("cost", shown_cost(cost) if cost is not None else "unknown"),
        *extra,
    ]
    shown = list(rows[:MAX_ANSWERS])
    answers = _answers([(r.label, r.outcome) for r in shown])
    if len(rows) > len(shown):
        more = (
            f"{len(rows) - len(shown):,} more answers are in the journal (fanwise show RUN --json)"
        )
        answers += f"<p class='hint'>{more}</p>"
    return _page(
        title,
        _meta(status, None, run_id, created),
        _stats(cards, reason),
        _timeline(rows),
        answers,
    )


def _meta(status: str, model: str | None, run_id: str | None, created: str | None) -> str:
    parts = [f"status <b>{escape(status)}</b>"]
    if model:
        parts.append(f"model {escape(model)}")
    if run_id:
        parts.append(f"run {escape(run_id)}")
    if created:
        parts.append(escape(created))
    return " · ".join(parts)


def _page(title: str, meta: str, *sections: str) -> str:
    body = [
        f"<header><h1>{escape(title)}</h1><p class='meta'>{meta}</p></header>",
        *sections,
        "<footer>made by fanwise · this page loads nothing and runs no script</footer>",
    ]
    css = resources.files("fanwise.ui").joinpath("report.css").read_text(encoding="utf-8")
    return PAGE.format(csp=CSP, title=escape(title), css=css, body="\n".join(body))


def _stats(cards: Sequence[tuple[str, str]], reason: str | None) -> str:
    items = "".join(f"<div><dt>{name}</dt><dd>{escape(value)}</dd></div>" for name, value in cards)
    why = f"<p class='reason'>{escape(reason)}</p>" if reason else ""
    return f"<section id='stats'><h2>Stats</h2><dl class='cards'>{items}</dl>{why}</section>"


def _timeline(rows: Sequence[TimelineRow]) -> str:
    calls = [r for r in rows if not r.synthesis]
    if len(calls) <= BIG_RUN:
        legend = "".join(
            f"<span class='key {kind}'></span>{escape(text)} "
            for kind, text in (
                ("ok", "attempt"),
                ("failed", "failed attempt"),
                ("wait", "waiting to retry"),
                ("queued", "held by the rate limiter"),
                ("synthesis", "synthesis"),
            )
        )
        hint = f"{len(calls)} calls on one time axis; hover a bar for its attempt and error."
        chart = f"<p class='legend'>{legend}</p>{gantt(rows)}"
    else:
        hint = (
            f"{len(calls):,} calls are too many for a bar each: how their latencies spread, "
            "and how many settled per second over the run."
        )
        origin = min(r.start for r in rows)
        ends = [r.end for r in calls]
        failed = [not r.outcome.ok for r in calls]
        chart = histogram([r.outcome.latency for r in calls])
        chart += throughput(ends, origin, failed=failed)
        synthesis = [r for r in rows if r.synthesis]
        if synthesis:
            chart += gantt(synthesis)
    return f"<section id='timeline'><h2>Timeline</h2><p class='hint'>{hint}</p>{chart}</section>"


def _synthesis(result: WorkflowResult) -> str:
    if result.text is not None:
        content = markdown(result.text)
    else:
        title = escape(result.workflow.title)
        content = f"<p class='reason'>No {title}: {escape(result.reason or '')}</p>"
    heading = escape(result.workflow.title.capitalize())
    return (
        f"<section id='synthesis'><h2>{heading}</h2>"
        f"<article class='guide'>{content}</article></section>"
    )


def _answers(items: Sequence[tuple[str, Fulfilled[Any] | Rejected]]) -> str:
    rendered = []
    open_ = " open" if len(items) <= 5 else ""
    for number, (question, outcome) in enumerate(items, 1):
        if isinstance(outcome, Fulfilled):
            status = "cached" if outcome.cached else "fulfilled"
            text = (
                outcome.value.text if isinstance(outcome.value, Completion) else str(outcome.value)
            )
            content = markdown(text)
        else:
            status = "rejected"
            content = f"<p class='error'>{escape(str(outcome.kind))}: {escape(outcome.message)}</p>"
        attempts = "".join(
            f"<tr><td>{a.number}</td><td>{a.started:.2f} s</td><td>{a.duration:.2f} s</td>"
            f"<td>{a.waited:.2f} s</td><td>{a.queued:.2f} s</td><td>{escape(_error(a.error))}</td>"
            "</tr>"
            for a in outcome.attempts
        )
        table = (
            "<table class='attempts'><tr><th>attempt</th><th>started</th><th>took</th>"
            f"<th>waited before</th><th>rate limiter</th><th>error</th></tr>{attempts}</table>"
            if attempts
            else ""
        )
        rendered.append(
            f"<details class='answer {status}'{open_}><summary><span class='n'>{number}</span> "
            f"{escape(question)} <span class='badge {status}'>{status} · "
            f"{outcome.latency:.2f} s</span></summary>{content}{table}</details>"
        )
    return f"<section id='answers'><h2>Answers</h2>{''.join(rendered)}</section>"


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
