"""``fanwise run PLAN`` for a plan of ``[[stage]]`` tables, and ``fanwise resume`` of one.

Wiring only: the stages run in ``fanwise.stages`` on the engine the other commands build; this
module records the run in the journal, shows the stages as they go and prints the result.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from fanwise.cli.engines import build_router, model_settings, seconds_left, with_deadline
from fanwise.cli.errors import EXIT_NO_RESULT, EXIT_OK, EXIT_PARTIAL, InputError
from fanwise.cli.options import RunOptions
from fanwise.cli.runner import Run, prepare, run
from fanwise.cli.schema_flags import check_schemas
from fanwise.cli.session import open_session, options_spec
from fanwise.prices import format_usd
from fanwise.stages import RunStatus, StagedResult, Workflow, run_stages
from fanwise.stages.runner import check_structured
from fanwise.ui.stage_show import to_markdown
from fanwise.ui.stream import SynthesisStream

EXIT_CODES = {
    RunStatus.COMPLETE: EXIT_OK,
    RunStatus.PARTIAL: EXIT_PARTIAL,
    RunStatus.NO_RESULT: EXIT_NO_RESULT,
}


def execute_staged(
    workflow: Workflow,
    plan_model: Mapping[str, Any],
    options: RunOptions,
    *,
    resume: int | None = None,
) -> int:
    """Run a staged workflow from resolved options; print the result; return the exit code."""
    if plan_model.get("endpoints") and not options.endpoints:
        options = dataclasses.replace(options, endpoints=tuple(plan_model["endpoints"]))
    options = with_deadline(options)
    if options.plan_only:
        raise InputError(
            "--plan-only: a plan of stages learns its later stages' calls as it runs; plan its "
            "first stage's lines with fanwise batch --plan-only"
        )
    model = prepare(options)
    model = build_router(options, model, workflow.models)  # a claude-* stage: Anthropic's own
    settings = model_settings(options, plan_model)
    check_schemas(lambda: check_structured(workflow, settings))
    spec = {
        "workflow": workflow.to_dict(),
        "plan_model": dict(plan_model),
        "settings": dataclasses.asdict(settings),
        "options": options_spec(options),
    }
    session = open_session(
        options,
        kind="stages",
        topic=workflow.topic or workflow.title,
        spec=spec,
        resume=resume,
        model=settings.model,
    )

    streamed = options.stream and not (options.as_json or options.out)
    stream = SynthesisStream(sys.stdout, sys.stderr) if streamed else None

    async def body(current: Run) -> StagedResult:
        engine = current.engine(stream.observe if stream else None)
        return await run_stages(
            workflow, engine, settings=settings, deadline=seconds_left(options), on_delta=stream
        )

    result, _ = run(options, model, session, body)
    summary = {
        "stats": result.to_dict()["stats"],
        "stages": result.summary(),
        "cost_usd": round(session.cost, 6),
    }
    session.finish(result.status.value, reason=result.reason, summary=summary)
    if options.as_json:
        document = json.dumps({**result.to_dict(), **session.to_dict()}, indent=2) + "\n"
    else:  # the last stage's text already on stdout, if it streamed
        document = to_markdown(result, text=stream is None or not stream.delivered)
    if options.out:
        Path(options.out).write_text(document, encoding="utf-8")
    else:
        click.echo(document, nl=False)
    if options.report:
        from fanwise.ui.stage_report import write_stages_report

        try:
            run_id = None if session.run_id is None else str(session.run_id)
            write_stages_report(options.report, result, cost=session.cost, run_id=run_id)
        except OSError as exc:
            raise InputError(f"--report {options.report}: cannot write: {exc.strerror}") from None
    if not options.quiet:
        click.echo(_summary(result, session.cost), err=True)
    if result.reason:
        click.echo(f"fanwise: no {workflow.title}: {result.reason}", err=True)
    return session.exit_code(EXIT_CODES[result.status])


def _summary(result: StagedResult, cost: float) -> str:
    stats = result.to_dict()["stats"]
    return (
        f"📊 {len(result.stages)} stages · {stats['calls']} calls: {stats['fulfilled']} "
        f"fulfilled, {stats['rejected']} rejected, {stats['cached']} from the journal · "
        f"{result.usage.total_tokens:,} tokens · {format_usd(cost)}"
    )
