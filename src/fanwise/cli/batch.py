"""``fanwise batch INPUT.jsonl -o OUTPUT.jsonl``: the big fan-out, recorded and resumable."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from fanwise.batch import BatchSummary, LineError, LineReader, run_batch
from fanwise.cli.batch_output import BatchOutput, batch_output, recover
from fanwise.cli.engines import announce, model_settings, run_config
from fanwise.cli.errors import (
    EXIT_NO_RESULT,
    EXIT_OK,
    EXIT_OUTPUT_FAILED,
    EXIT_PARTIAL,
    EXIT_USAGE,
    InputError,
)
from fanwise.cli.flags import batch_options
from fanwise.cli.inputs import STDIN, spool_stdin
from fanwise.cli.options import RunOptions
from fanwise.cli.output_paths import check_not_input, unwritten
from fanwise.cli.report_cmd import run_report_page
from fanwise.cli.runner import Run, prepare, run
from fanwise.cli.session import (
    Session,
    check_journal_flags,
    journal_off,
    open_journal,
    open_session,
)
from fanwise.config import RunConfig
from fanwise.context import cache_report
from fanwise.engine import Call, Engine
from fanwise.models.settings import ModelSettings
from fanwise.outcome import Cancelled
from fanwise.prices import shown_cost


@click.command()
@click.argument(
    "input_file", metavar="INPUT.jsonl", type=click.Path(dir_okay=False, allow_dash=True)
)
@click.option(
    "--instructions",
    metavar="TEXT",
    default=None,
    help="System instructions for every plain line that gives none of its own.",
)
@click.option(
    "--validate",
    is_flag=True,
    help="Check each answer against its line's own JSON Schema (response_format or "
    "text.format); one that breaks it is invalid_response, and retried.",
)
@click.option(
    "--cache-prefix",
    is_flag=True,
    help="For lines that share a system prompt: tell the provider where it ends (OpenAI's "
    "prompt_cache_key, Anthropic's cache_control) and send the first line before the rest, "
    "so they read it from the prompt cache (docs/caching.md). Changes the bodies you wrote.",
)
@batch_options
def batch(input_file: str, instructions: str | None, validate: bool, **kwargs: Any) -> None:
    """Send one request per line of INPUT.jsonl in parallel; write one result line for each.

    \b
    A line is an OpenAI batch-file line, as the Batch API takes it:
      {"custom_id": "r1", "method": "POST", "url": URL, "body": {...}}
    with URL /v1/responses, /v1/chat/completions, /v1/embeddings or /v1/completions. Its body
    goes to its url unchanged (tools, response_format, messages, seed...: all of it); only a
    missing "model" is filled in from --model. Or a plain line:
      {"prompt": "...", "custom_id": "...", "model": "...", "system": "..."}
    sent to --api's endpoint (a line's own model and effort win over the flags). A line is
    refused, by number, for what the Batch API refuses (not UTF-8, not JSON, missing or
    duplicate custom_id, method not POST, unknown url, body not an object); the others go on.

    \b
    Each result is one line of OpenAI's batch output, written as its call settles:
      {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error",
       "fanwise": {"line", "attempts", "latency", "cached", "cost_usd"}}
    "body" is the server's whole answer (an HTTP error's body too); a failure with no HTTP
    answer has "response": null and "error": {"code", "message"}. Results go to --out or
    stdout; the file is streamed, so memory stays flat. Every call is journaled, so `fanwise
    resume RUN` finishes an interrupted batch. INPUT.jsonl `-` reads standard input (kept under
    $FANWISE_HOME/inputs/ for the resume).
    """
    options = RunOptions.from_kwargs(kwargs)
    if input_file != STDIN:
        sys.exit(
            execute_batch(Path(input_file), options, instructions=instructions, validate=validate)
        )
    no_resume = journal_off(options)
    source = spool_stdin(temporary=no_resume)
    try:
        code = execute_batch(source, options, instructions=instructions, validate=validate)
    finally:
        if no_resume:
            source.unlink(missing_ok=True)
    if code == EXIT_OK:  # kept only while a resume may need it
        source.unlink(missing_ok=True)
    sys.exit(code)


def execute_batch(
    source: Path,
    options: RunOptions,
    *,
    resume: int | None = None,
    instructions: str | None = None,
    validate: bool = False,
    config: RunConfig | None = None,
) -> int:
    """Run one batch from resolved options (``config``: a resumed run's own); return the exit
    code."""
    if not source.is_file():
        raise InputError(f"{source}: no such input file")
    check_journal_flags(options)
    if options.report and journal_off(options):
        raise InputError("--report: a batch's report is read from the journal, which is off")
    if options.out:
        check_not_input("--out", options.out, source)
    total = count_lines(source)
    if total == 0:
        raise InputError(f"no requests in {source}: every line is blank")
    fresh = config is None
    config = config or run_config(options)
    defaults = model_settings(config)
    if options.plan_only:
        from fanwise.cli.auto_view import plan_only, show_forecast

        show_forecast(plan_only(_calls(source, defaults, instructions), config))
        return EXIT_OK
    prepare(options)
    if fresh:
        announce(options, config)
    spec = {
        "input": str(source.resolve()),
        "output": str(Path(options.out).resolve()) if options.out else None,
        "settings": dataclasses.asdict(defaults),
        "instructions": instructions,
        "validate": validate,
    }
    line_of: dict[int, int] = {}  # run_batch fills it, the journal reads each call's line
    with batch_output(options.out, resume=resume is not None) as output:
        if output.previous is not None and resume is not None and config.journal:
            # Before the run is reopened: the answers it takes back close their sent marks.
            with open_journal(config.journal_path, purpose="fanwise resume RUN") as journal:
                kept = recover(
                    output.previous,
                    source,
                    journal,
                    resume,
                    LineReader(defaults, instructions),
                    validate=validate,
                )
            if kept:
                click.echo(
                    f"fanwise: kept {kept} answers from --out {options.out} that the journal "
                    "lacked: they are not sent again",
                    err=True,
                )
        session = open_session(
            options,
            config,
            kind="batch",
            topic=source.name,
            spec=spec,
            total=total,
            resume=resume,
            lines=line_of,
        )

        used: list[Engine] = []  # the engine the run made: an auto run's switch is in it

        async def body(current: Run) -> BatchSummary:
            used.append(engine := current.engine())
            return await _batch(
                source, output, current, engine, defaults, total, instructions, validate, line_of
            )

        summary, _ = run(options, session, body, total=total)
        status, reason = summary.status, None
        if summary.bad_lines:
            reason = f"{summary.bad_lines} bad input lines"
        if output.sink.error is not None:
            status, reason = "interrupted", f"the output could not be written ({output.sink.error})"
        output.whole = output.sink.error is None and not session.failed_closed
    by_path = None
    if config.engine == "auto":  # imported only then: the others need none of it
        from fanwise.cli.auto_view import totals, totals_line

        by_path = totals(session, used[0].dispatch if used else None)
    extra = {} if by_path is None else {"auto": by_path.to_dict()}
    cache = cache_report(summary.by_model.items(), session.prices)
    if cache.cached_tokens or cache.written_tokens:
        extra["cache"] = cache.to_dict()
    session.finish(
        status,
        reason=reason,
        summary={**summary.to_dict(), "cost_usd": round(session.cost, 6), **extra},
    )
    if not options.quiet:
        click.echo(summary_line(summary, session), err=True)
        if by_path is not None:
            click.echo(totals_line(by_path), err=True)
        said = cache.line()
        if said is not None:
            click.echo(f"💾 {said}", err=True)
    if options.report and session.run_id is not None:
        page = run_report_page(session.run_id, config.journal_path)
        try:
            Path(options.report).write_text(page, encoding="utf-8")
        except OSError as exc:  # the calls are paid for: say where the report can come from
            where = config.journal_path
            line = unwritten("--report", options.report, exc, session, "report", where)
            click.echo(line, err=True)
            return EXIT_NO_RESULT
    if output.sink.error is not None:
        return EXIT_OUTPUT_FAILED
    if status == "no_result" and summary.rejected and summary.refused_auth == summary.rejected:
        return session.exit_code(EXIT_USAGE)  # every call refused for the key, as research says
    return session.exit_code(
        {"complete": EXIT_OK, "partial": EXIT_PARTIAL}.get(status, EXIT_NO_RESULT)
    )


def output_failed(error: OSError, session: Session) -> str:
    """The one line said when the output cannot be written (a full disk)."""
    where = session.output
    cause = error.strerror or str(error)
    if session.resume_command is None:
        return (
            f"fanwise: error: cannot write {where} ({cause}): stopped sending; the calls in "
            "flight finish, but with no journal their answers are lost: run the command again"
        )
    return (
        f"fanwise: error: cannot write {where} ({cause}): stopped sending; every answer is kept "
        f"in the journal. Free some space, then: {session.resume_command}"
    )


def _calls(source: Path, defaults: ModelSettings, instructions: str | None) -> Iterator[Call]:
    """The good lines' calls, for ``--plan-only`` (a bad line is said by the run itself)."""
    reader = LineReader(defaults, instructions)
    with source.open("rb") as lines:
        for number, text in enumerate(lines, 1):
            if text.strip():
                try:
                    yield Call(reader.read(text, number).request)
                except LineError:
                    continue


def count_lines(path: Path) -> int:
    """The non-blank lines of the input (a first streaming pass, for progress and ETA)."""
    try:
        with path.open("rb") as lines:  # bytes: a line that is not UTF-8 is that line's error
            return sum(1 for line in lines if line.strip())
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None


def summary_line(summary: BatchSummary, session: Session) -> str:
    bad_lines = summary.bad_lines
    bad = f", {bad_lines} bad line{'' if bad_lines == 1 else 's'}" if bad_lines else ""
    bad += f", {summary.not_sent} not sent" if summary.not_sent else ""
    cached = f" ({summary.cached} from the journal)" if summary.cached else ""
    cached += f" ({summary.truncated} cut at their token cap)" if summary.truncated else ""
    queued = summary.queue_time
    held = f" (+ {queued:.1f} s queued in fanwise's limiter)" if queued >= 0.05 else ""
    return (
        f"📊 {summary.fulfilled} fulfilled{cached}, {summary.rejected} rejected{bad} · "
        f"wall time {summary.wall_time:.1f} s · service time {summary.service_time:.1f} s"
        f"{held} · {summary.usage.total_tokens:,} tokens · "
        f"{shown_cost(session.cost_shown)}"
        + ("" if session.run_id is None else f" · run {session.run_id}")
    )


async def _batch(
    source: Path,
    output: BatchOutput,
    current: Run,
    engine: Engine,
    defaults: ModelSettings,
    total: int,
    instructions: str | None,
    validate: bool,
    line_of: dict[int, int],
) -> BatchSummary:
    session = current.session

    def write(line: str) -> None:
        if output.sink.write(line) or engine.halted is not None:
            return
        error = output.sink.error
        assert error is not None
        engine.halt(Cancelled(f"not sent: the output could not be written ({error})"))
        click.echo(output_failed(error, session), err=True)

    def bad_line(error: LineError) -> None:
        click.echo(f"fanwise: {source}:{error.line}: {error.reason}", err=True)

    with source.open("rb") as lines:
        return await run_batch(
            lines,
            engine,
            write,
            defaults=defaults,
            instructions=instructions,
            total=total,
            on_bad_line=bad_line,
            deadline=current.session.opened.config.seconds_left(),
            fail_fast=current.options.mode == "all",
            name=source.name,
            validate=validate,
            line_of=line_of,
            cache_prefix=current.options.cache_prefix,
        )


__all__ = ["batch", "execute_batch"]
