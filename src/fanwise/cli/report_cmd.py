"""``fanwise report RUN -o FILE.html`` and the rows of ``fanwise show RUN --timeline``.

Both read a run back from the journal, with no API call: a workflow is rebuilt as its result, a
batch is its calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from fanwise.cli.errors import InputError
from fanwise.cli.journal_flags import journal_option
from fanwise.cli.journal_read import RUN_ID, read_journal
from fanwise.context import cache_summary
from fanwise.journal import CallRecord, RunRecord
from fanwise.journal.results import rebuild_result, rebuild_workflow
from fanwise.prices import cost_text, format_usd
from fanwise.ui.timeline import TimelineRow, rows_of


def timeline_rows(record: RunRecord, calls: Iterable[CallRecord]) -> list[TimelineRow]:
    """Every call of a recorded run on its time axis (a workflow's synthesis last)."""
    if record.kind == "workflow":
        return rows_of(rebuild_workflow(record, calls))
    return [TimelineRow(call.index, call.label, call.outcome) for call in calls]


def report_html(record: RunRecord, calls: Iterable[CallRecord]) -> str:
    """The HTML report of a recorded run."""
    from fanwise.ui.html_report import calls_to_html, to_html  # markdown-it: only for a report

    created = datetime.fromtimestamp(record.started_at).strftime("%Y-%m-%d %H:%M")
    totals = record.totals
    cost = cost_text(totals.cost, totals.unpriced_models) if totals.unpriced else totals.cost
    calls = list(calls)
    result = rebuild_result(record, calls)  # the live run's result: the live run's report
    if result is not None and result.plan is not None:
        cache = record.summary.get("cache")
        return to_html(result, run_id=str(record.id), cost=cost, created=created, cache=cache)
    if result is not None:
        from fanwise.ui.stage_report import to_html as stages_html

        return stages_html(result, cost=cost, run_id=str(record.id))
    if record.kind == "stages" and "workflow" in record.spec:  # older: each stage by its labels
        from fanwise.stages import Workflow
        from fanwise.ui.stage_report import from_journal

        return from_journal(
            Workflow.from_dict(record.spec["workflow"]),
            [(call.index, call.label, call.outcome) for call in calls],
            status=record.status,
            reason=record.reason,
            summary=record.summary,
            cost=cost,
            run_id=str(record.id),
        )
    return calls_to_html(
        f"{record.kind} {record.topic}",
        timeline_rows(record, calls),
        status=record.status,
        reason=record.reason,
        run_id=str(record.id),
        cost=cost,
        created=created,
        extra=[*auto_cards(record.summary.get("auto")), *cache_cards(record.summary)],
    )


def cache_cards(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the prompt cache saved a batch (``--cache-prefix``), as the report's card."""
    said = cache_summary(summary.get("cache"))
    return [] if said is None else [("prompt cache", said)]


def auto_cards(auto: Any) -> list[tuple[str, str]]:
    """An ``--engine auto`` run's lines and cost by path, the saving and the deadline."""
    if not isinstance(auto, dict):
        return []
    lines, cost = auto.get("lines", {}), auto.get("cost_usd", {})
    met = auto.get("deadline_met")
    return [
        ("by the Batch API", f"{lines.get('batch', 0):,} ({format_usd(cost.get('batch', 0.0))})"),
        ("live", f"{lines.get('live', 0):,} ({format_usd(cost.get('live', 0.0))})"),
        ("saved against all-live", format_usd(auto.get("saved_usd", 0.0))),
        ("deadline", "met" if met else "missed" if met is False else "unknown"),
    ]


def run_report_page(run_id: int, journal: str | None) -> str:
    """The HTML report of a recorded run, read from the journal."""
    with read_journal(journal, purpose="fanwise report RUN") as opened:
        record = opened.run(run_id)
        if record is None:
            raise InputError(f"no run {run_id} in the journal {opened.path} (see: fanwise runs)")
        return report_html(record, opened.latest_calls(run_id))


def write_run_report(path: str, run_id: int, journal: str | None) -> None:
    """Write the HTML report of a recorded run; a clean one-line error when it cannot."""
    page = run_report_page(run_id, journal)
    try:
        Path(path).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot write the report: {exc.strerror}") from None


@click.command()
@click.argument("run_id", metavar="RUN", type=RUN_ID)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE.html",
    help="Where to write the report.",
)
@journal_option()
def report(run_id: int, out: str, journal: str | None) -> None:
    """Write run RUN's HTML report from the journal, with no API call: a timeline of every call
    and attempt, the answers, the synthesis and the stats, in one file that works offline."""
    write_run_report(out, run_id, journal)
    click.echo(f"fanwise: wrote the report of run {run_id} to {out}", err=True)
