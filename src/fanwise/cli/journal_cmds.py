"""``fanwise runs``, ``fanwise show RUN`` and ``fanwise resume RUN``: the journal, read back."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from fanwise.batch import output_line
from fanwise.cli.batch import batch, execute_batch
from fanwise.cli.engine_flags import EndpointList
from fanwise.cli.errors import InputError
from fanwise.cli.flags import workflow_options
from fanwise.cli.journal_flags import journal_option, max_cost_option
from fanwise.cli.journal_read import RUN_ID, journal_exists, process_alive, read_journal
from fanwise.cli.numbers import FiniteRange
from fanwise.cli.options import RunOptions
from fanwise.cli.otel_flag import otel_option
from fanwise.cli.output_paths import check_writable
from fanwise.cli.report_cmd import timeline_rows
from fanwise.cli.run_counts import research_counts
from fanwise.cli.session import RESUME_OVERRIDES, config_error, open_journal
from fanwise.cli.workflows import execute
from fanwise.config.stored import RESUME_SETTINGS, resumed_config, stored_args
from fanwise.factory import ConfigError
from fanwise.journal import CallRecord, Journal, RunRecord
from fanwise.journal.results import plan_from_spec, rebuild_result
from fanwise.models.base import Usage
from fanwise.outcome import Fulfilled
from fanwise.paths import journal_path
from fanwise.prices import cost_text, format_usd
from fanwise.stages.result import group
from fanwise.ui.documents import to_json, to_markdown
from fanwise.ui.timeline import ascii_timeline
from fanwise.ui.words import cli_words


@click.command()
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many runs to list, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@journal_option()
def runs(limit: int, as_json: bool, journal: str | None) -> None:
    """List recent runs: id, when, topic, research calls answered and failed, the synthesis,
    cost and status."""
    if not journal_exists(journal):  # a read: never create a journal to find it empty
        if as_json:
            click.echo("[]")
        else:
            click.echo(f"No runs yet in {journal_path(journal)}.", err=True)
        return
    with open_journal(journal, purpose="fanwise runs") as opened:
        records = [(record, research_counts(opened, record)) for record in opened.runs(limit)]
    if as_json:
        documents = [{**_run_dict(r), **counts.to_dict()} for r, counts in records]
        click.echo(json.dumps(documents, indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo(f"No runs yet in {opened.path}.", err=True)
        return
    head = ("ID", "STARTED", "KIND", "TOPIC", "OK", "FAILED", "SYNTHESIS", "COST", "CACHE WRITES")
    rows = [(*head, "STATUS")]
    unknown: set[str] = set()
    for record, counts in records:
        totals = record.totals
        cost = format_usd(totals.cost)
        if totals.unanswered:  # calls sent and never answered: paid for, perhaps
            cost = f"{cost}–{format_usd(totals.cost_max)}"
        if totals.unpriced:  # unpriced is not free: say so, with the priced part
            cost = f"{cost} + ?" if totals.cost or totals.unanswered else "unknown"
            unknown.update(totals.unpriced_models)
        rows.append(
            (
                str(record.id),
                datetime.fromtimestamp(record.started_at).strftime("%Y-%m-%d %H:%M"),
                record.kind,
                _clip(record.topic, 32),
                str(counts.fulfilled),
                str(counts.rejected),
                counts.synthesis or "-",
                cost,
                _cache_writes(totals.usage),
                _status(record),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())
    if unknown:
        click.echo(f"?: {cost_text(0.0, unknown)}")


def _cache_writes(usage: Usage) -> str:
    """Anthropic's prompt-cache writes (input tokens priced above input), the 1-hour ones apart."""
    if not usage.cache_write_tokens:
        return "-"
    hour = usage.cache_write_1h_tokens
    return f"{usage.cache_write_tokens:,}" + (f" ({hour:,} 1h)" if hour else "")


@click.command()
@click.argument("run_id", metavar="RUN", type=RUN_ID)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of Markdown.")
@click.option(
    "--jsonl",
    is_flag=True,
    help="A batch run's output lines again (OpenAI's batch output, whole bodies), one per call.",
)
@click.option(
    "--timeline", is_flag=True, help="An ASCII timeline of every call and retry, on one time axis."
)
@click.option(
    "--out", "-o", type=click.Path(dir_okay=False), help="Write it to this file, not to stdout."
)
@journal_option()
def show(
    run_id: int, as_json: bool, jsonl: bool, timeline: bool, out: str | None, journal: str | None
) -> None:
    """Print run RUN's results again from the journal, with no API call."""
    views = [
        flag
        for flag, on in (("--json", as_json), ("--jsonl", jsonl), ("--timeline", timeline))
        if on
    ]
    if len(views) > 1:  # each is a whole view of its own: one would silently win
        raise InputError(f"{' and '.join(views)} are different views of a run: give one")
    with read_journal(journal, purpose="fanwise show RUN") as opened:
        record = _find(opened, run_id)
        calls = list(opened.latest_calls(run_id))
    if record.totals.unanswered:
        click.echo(unanswered_note(record), err=True)
    if not record.text_kept and not timeline:
        click.echo(
            f"fanwise: run {run_id} kept no prompt or answer text (--journal-content meta): "
            "its shape, status, timings, usage and cost only",
            err=True,
        )
    if out:
        check_writable("--out", out)
    text = _shown(
        record,
        calls,
        as_json=as_json,
        jsonl=jsonl,
        timeline=timeline,
        journal=opened.path,
        given=journal,
    )
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write: {exc.strerror}") from None


def _shown(
    record: RunRecord,
    calls: list[CallRecord],
    *,
    as_json: bool,
    jsonl: bool,
    timeline: bool,
    journal: Path | None = None,
    given: str | None = None,
) -> str:
    """What ``fanwise show`` prints for a run: its output lines, timeline, JSON or Markdown.

    A workflow run (a research plan or a plan of stages) is rebuilt into the result the live
    run made, and shown by the same code: ``--json`` is the document the live ``--json``
    printed, the Markdown the live Markdown."""
    if jsonl:  # the input line: journaled since schema 5, null for calls journaled before
        return "".join(
            output_line(call.label, call.outcome, line=call.line, key=call.key, cost=call.cost)
            + "\n"
            for call in calls
        )
    result = rebuild_result(record, calls)
    if record.kind == "stages" and result is None:
        why = (
            f"did not finish ({_status(record)}; fanwise resume {record.id} finishes it)"
            if record.status in ("running", "interrupted", "unrecorded")
            else "was journaled before fanwise kept each stage's shape"
        )
        click.echo(
            f"fanwise: run {record.id} {why}: its calls are shown, not its stages' reasons, "
            "values or citations",
            err=True,
        )
    if timeline:
        width = shutil.get_terminal_size((100, 24)).columns
        if result is not None and result.plan is None:  # one group per stage
            from fanwise.ui.stage_show import grouped_timeline, stage_rows

            groups = {r.name: f"{group(r)}, {r.status.value}" for r in result.stages}
            return grouped_timeline(result.workflow, stage_rows(result), width, groups)
        rows = timeline_rows(record, calls)
        if record.kind == "stages" and "workflow" in record.spec:  # an older run: by label
            from fanwise.stages import Workflow
            from fanwise.ui.stage_show import grouped_timeline

            workflow = Workflow.from_dict(record.spec["workflow"])
            stages = record.summary.get("stages") or []
            told = {s["name"]: f"{s['group']}, {s['status']}" for s in stages}
            return grouped_timeline(workflow, rows, width, told)
        return ascii_timeline(rows, width=width)
    if result is not None:
        if as_json:
            run = {**_live_run(record, journal, given), **_run_dict(record)}
            auto = record.summary.get("auto")  # an --engine auto run's paths, as printed
            extra = {} if auto is None else {"auto": auto}
            return to_json(result, run=run, cost=_cost(record), **extra)
        if result.plan is not None:
            return to_markdown(result)
        from fanwise.ui.stage_show import to_markdown as stage_markdown

        return stage_markdown(result)
    if as_json:
        document = {
            "run": _run_dict(record),
            "calls": [
                {"custom_id": c.label, "key": c.key, **c.outcome.to_dict(), "cost_usd": c.cost}
                for c in calls
            ],
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    parts = [f"# {record.kind} {record.topic} (run {record.id}, {_status(record)})\n"]
    for call in calls:
        outcome = call.outcome
        parts.append(f"## {call.label}\n")
        if isinstance(outcome, Fulfilled):
            parts.append(outcome.value.text.strip() + "\n")
        else:
            parts.append(f"_failed: {outcome.kind}: {cli_words(outcome.message)}_\n")
    return "".join(f"{part}\n" for part in parts)


def _live_run(record: RunRecord, journal: Path | None, given: str | None) -> dict[str, Any]:
    """The ``run`` the live ``--json`` printed: its id, journal and resume line."""
    resume: str | None = None
    if record.text_kept:
        resume = f"fanwise resume {record.id}"
        if given:
            resume = f"{resume} --journal {shlex.quote(given)}"
    return {"id": record.id, "journal": None if journal is None else str(journal), "resume": resume}


def _cost(record: RunRecord) -> dict[str, Any]:
    """The ``cost`` the live ``--json`` printed, as the run kept it (a run journaled before it
    was kept: its totals)."""
    kept = record.summary.get("cost")
    if isinstance(kept, dict) and kept:
        return dict(kept)
    return {"usd": round(record.totals.cost, 6), "unpriced_calls": record.totals.unpriced}


@click.command()
@click.argument("run_id", metavar="RUN", type=RUN_ID)
@journal_option()
@max_cost_option()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (workflows).")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write the result here.")
@click.option(
    "--quiet/--no-quiet",
    default=None,
    help="No progress lines on stderr, or (--no-quiet) show them though the run was --quiet.",
)
@click.option("--plain", is_flag=True, help="Plain progress lines, even on a terminal.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Most calls in flight.")
@click.option("--retries", type=click.IntRange(min=0), help="Retries per call this time.")
@otel_option()
@click.option(
    "--timeout",
    type=FiniteRange(min=0, min_open=True),
    help="Seconds each attempt may take this time.",
)
@click.option("--rpm", type=click.IntRange(min=1), help="Requests a minute, at most, this time.")
@click.option("--tpm", type=click.IntRange(min=1), help="Tokens a minute, at most, this time.")
@click.option(
    "--base-url",
    help="Ask this OpenAI-compatible server now (the same model and requests), e.g. after it "
    "moved.",
)
@click.option(
    "--endpoints",
    type=EndpointList(),
    help="Spread the remaining calls over these OpenAI-compatible endpoints.",
)
@click.option(
    "--retry-with",
    type=click.Choice(["batch", "live"]),
    help="--engine batch runs: send failed or expired lines again in a new batch, or live.",
)
@click.pass_context
def resume(ctx: click.Context, /, run_id: int, **overrides: Any) -> None:
    """Finish run RUN: send only its missing or failed calls, reuse the answered ones (no
    request for them), then synthesize. The run's own plan, model and options are used; the
    flags here change only the budget, the pace, the retries, the server asked, what is shown
    and where the output goes. A run on the Batch API (--engine batch) collects the batches it
    left running, from any machine.
    """
    with read_journal(overrides["journal"], purpose="fanwise resume RUN") as opened:
        record = _find(opened, run_id)
    if not record.text_kept:
        raise InputError(
            f"run {run_id} kept no prompt or answer text (--journal-content meta), so it cannot "
            "be resumed: run the command again"
        )
    if record.status == "running" and process_alive(record.pid):
        raise InputError(f"run {run_id} is still running (process {record.pid})")
    if record.kind not in ("workflow", "batch", "stages"):
        raise InputError(
            f"run {run_id} ({record.kind}) was made from Python: run it again there with "
            "cache=True to reuse its answers"
        )
    given = {
        name: value
        for name, value in overrides.items()
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    }
    given["journal"] = overrides["journal"]  # the journal the run was found in
    spec = record.spec
    options = rebuild_options(spec.get("cli") or spec.get("options", {}), given)
    try:
        changes = {name: given[name] for name in RESUME_SETTINGS if name in given}
        config = resumed_config(spec, given["journal"], changes)
    except ConfigError as exc:
        raise config_error(exc) from None
    if record.kind == "batch":
        _refuse_what_batch_refuses(ctx, run_id, given)
        source = Path(spec["input"])
        if not given.get("out") and spec.get("output"):
            options = dataclasses.replace(options, out=spec["output"])
        instructions = spec.get("instructions")
        validate = bool(spec.get("validate"))
        sys.exit(
            execute_batch(
                source,
                options,
                resume=run_id,
                instructions=instructions,
                validate=validate,
                config=config,
            )
        )
    if record.kind == "stages":
        from fanwise.stages import Workflow

        workflow = Workflow.from_dict(spec["workflow"])
        plan_model = spec.get("plan_model", {})
        sys.exit(execute(workflow, plan_model, options, resume=run_id, config=config))
    if "args" in spec:  # the quorum and fail-fast the run had
        args = stored_args(spec)
        mode = "all" if args["fail_fast"] else "settled"
        options = dataclasses.replace(
            options, min_answers=args["min_answers"], mode=mode, warm=args["warm"]
        )
    plan = plan_from_spec(spec)
    sys.exit(execute(plan, spec.get("plan_model", {}), options, resume=run_id, config=config))


@click.command()
@workflow_options
def _defaults(**kwargs: Any) -> None:
    """Never run: its parser supplies the default of every shared flag."""


def rebuild_options(stored: Mapping[str, Any], overrides: Mapping[str, Any]) -> RunOptions:
    """The stored options over today's defaults (for flags added since), then the overrides."""
    defaults = _defaults.make_context("fanwise", []).params
    known = set(RunOptions.__dataclass_fields__)
    values = {**defaults, **{k: v for k, v in stored.items() if k in known}}
    values.update({k: v for k, v in overrides.items() if k in RESUME_OVERRIDES})
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return RunOptions.from_kwargs(values)


_BATCH_HINTS = {"as_json": " (its result lines are JSON already)"}


def _refuse_what_batch_refuses(ctx: click.Context, run_id: int, given: Mapping[str, Any]) -> None:
    """A batch run resumes as ``fanwise batch`` runs, so a flag that command has not got (today,
    ``--json``) is refused before any request, as ``fanwise batch`` would refuse it."""
    takes = {param.name for param in batch.params}
    for param in ctx.command.params:
        if param.name in given and param.name not in takes and param.opts:
            flag = param.opts[0]
            raise InputError(
                f"{flag}: run {run_id} is a batch, and fanwise batch takes no {flag}"
                + _BATCH_HINTS.get(param.name or "", "")
            )


def _find(journal: Journal, run_id: int) -> RunRecord:
    record = journal.run(run_id)
    if record is None:
        raise InputError(f"no run {run_id} in the journal {journal.path} (see: fanwise runs)")
    return record


def unanswered_note(record: RunRecord) -> str:
    """What a crash may have cost beyond the journal: the calls sent and never answered."""
    totals = record.totals
    return (
        f"fanwise: run {record.id}: {totals.unanswered} calls were sent and never answered (a "
        "crash or an interruption): they may have been paid for, so its cost is "
        f"{format_usd(totals.cost)} to {format_usd(totals.cost_max)}"
    )


def _run_dict(record: RunRecord) -> dict[str, Any]:
    return {**record.to_dict(), "status": _status(record)}


def _status(record: RunRecord) -> str:
    """The stored status, except that a 'running' run whose process is gone has stopped."""
    if record.status == "running" and not process_alive(record.pid):
        return "stopped"
    return record.status


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
