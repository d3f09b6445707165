"""``fanwise travel``, ``fanwise research`` and ``fanwise run``: one path, three front doors.

A research plan and a plan of ``[[stage]]`` tables (and ``fanwise resume`` of either) run
through ``execute``: one runner, one result, the same ``--out``, ``--report`` and exit codes.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from fanwise.cli.engines import announce, model_settings, run_config
from fanwise.cli.errors import EXIT_NO_RESULT, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, InputError
from fanwise.cli.flags import workflow_options
from fanwise.cli.inputs import read_context, read_questions
from fanwise.cli.options import RunOptions
from fanwise.cli.output_paths import unwritten
from fanwise.cli.runner import Run, prepare, run
from fanwise.cli.schema_flags import apply_schema_flags, check_schemas, schema_options
from fanwise.cli.session import Session, open_session, workflow_session
from fanwise.config import RunConfig
from fanwise.context import cache_report, storage_cost, tokens
from fanwise.models.base import ExplicitCache, Request, Usage
from fanwise.models.settings import ModelSettings
from fanwise.outcome import ErrorKind, Fulfilled, Rejected
from fanwise.plans import (
    LoadedPlan,
    LoadedWorkflow,
    PlanError,
    builtin_plans,
    load_any,
    load_plan,
)
from fanwise.prices import PriceTable, shown_cost
from fanwise.stages.model import Workflow
from fanwise.stages.research import Plan
from fanwise.stages.result import Status, WorkflowResult
from fanwise.stages.runner import check_structured, run_stages, run_workflow
from fanwise.stages.shape import result_shape
from fanwise.structured import outcome_usage
from fanwise.ui.documents import to_json, to_markdown, write_report
from fanwise.ui.stage_show import to_markdown as stage_markdown
from fanwise.ui.stream import SynthesisStream


@click.command()
@click.argument("destination")
@workflow_options
@schema_options
def travel(destination: str, **kwargs: Any) -> None:
    """Research DESTINATION in parallel and write a travel guide (the seed's workflow).

    Three independent questions (attractions, transportation, culture) are asked at once; the
    answers that arrive are combined into one guide, which says what is missing.
    """
    options = RunOptions.from_kwargs(kwargs)
    if not destination.strip():
        raise InputError("DESTINATION must not be empty, e.g. fanwise travel Kyoto")
    loaded = _load("travel", {"destination": destination})
    sys.exit(execute(apply_schema_flags(loaded.plan, kwargs), loaded.model, options))


@click.command()
@click.argument("topic")
@click.option(
    "--question",
    "-q",
    "questions",
    multiple=True,
    help="A question to research (repeat for more); each is asked in parallel. @FILE reads "
    "one question a line from FILE (@- from stdin).",
)
@click.option(
    "--questions-file",
    "questions_files",
    multiple=True,
    metavar="FILE",
    help="Read one question a line from FILE (- for stdin); with or instead of -q.",
)
@click.option("--instructions", help="Added to the synthesis prompt, e.g. 'a one-page brief'.")
@click.option(
    "--context",
    "contexts",
    multiple=True,
    metavar="FILE",
    help="Material every question is asked about (repeatable; - for stdin): placed once, "
    "before the question, the same bytes in every call, so the provider caches it "
    "(docs/caching.md).",
)
@workflow_options
@schema_options
def research(
    topic: str,
    questions: tuple[str, ...],
    questions_files: tuple[str, ...],
    instructions: str | None,
    contexts: tuple[str, ...],
    **kwargs: Any,
) -> None:
    """Ask every -q QUESTION about TOPIC at once, then synthesize one answer."""
    options = RunOptions.from_kwargs(kwargs)
    if not topic.strip():
        raise InputError('TOPIC must not be empty, e.g. fanwise research "home espresso" -q ...')
    asked = read_questions(questions, questions_files)
    if not asked:
        raise InputError(
            "no questions: give -q QUESTION (repeatable), -q @FILE or --questions-file"
        )
    plan = Plan(topic=topic, questions=asked, context=read_context(contexts))
    if instructions:
        prompt = f"{plan.synthesis_instructions}\n\n{instructions.strip()}"
        plan = dataclasses.replace(plan, synthesis_instructions=prompt)
    sys.exit(execute(apply_schema_flags(plan, kwargs), {}, options))


@click.command("run", epilog=f"Built-in plans: {', '.join(builtin_plans())} (fanwise run NAME).")
@click.argument("plan_file", metavar="PLAN")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Fill a plan variable, e.g. --set destination=Kyoto (repeatable).",
)
@workflow_options
@schema_options
def run_plan(plan_file: str, assignments: tuple[str, ...], **kwargs: Any) -> None:
    """Run a plan: a TOML file of questions and synthesis, or of [[stage]] tables (or a built-in
    plan name, e.g. travel or city-districts)."""
    options = RunOptions.from_kwargs(kwargs)
    variables: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. --set destination=Kyoto")
        variables[key.strip()] = value
    try:
        loaded = load_any(plan_file, variables)
    except PlanError as exc:
        raise _input_error(exc) from None
    if isinstance(loaded, LoadedWorkflow):  # [[stage]] tables (docs/workflows.md)
        for flag, given in (
            ("--schema", kwargs.get("schema")),
            ("--synthesis-schema", kwargs.get("synthesis_schema")),
            ("--mode all", options.mode == "all"),
        ):
            if given:
                raise InputError(
                    f"{flag}: a plan of stages sets its schemas and failure policies per stage "
                    f"(schema = ..., policy = ...), in {plan_file}"
                )

        sys.exit(execute(loaded.workflow, loaded.model, options))
    sys.exit(execute(apply_schema_flags(loaded.plan, kwargs), loaded.model, options))


def _load(source: str | Path, variables: Mapping[str, str]) -> LoadedPlan:
    """The plan, or its error in the CLI's words (variables are given with ``--set``)."""
    try:
        return load_plan(source, variables)
    except PlanError as exc:
        raise _input_error(exc) from None


def _input_error(exc: PlanError) -> InputError:
    message = str(exc)
    if exc.unknown is not None:
        message = message.replace(f"variable {exc.unknown!r}:", f"--set {exc.unknown}:")
    if exc.missing:
        message += ": " + " ".join(f"--set {name}=..." for name in exc.missing)
    return InputError(message)


def execute(
    job: Plan | Workflow,
    plan_model: Mapping[str, Any],
    options: RunOptions,
    *,
    resume: int | None = None,
    config: RunConfig | None = None,
) -> int:
    """Run a workflow (a research plan or a plan of stages) from resolved options (``config``:
    a resumed run's own); print the result; return the exit code. The one path of ``travel``,
    ``research``, ``run PLAN`` (with or without ``[[stage]]``) and ``resume``: the same
    ``--out``, report and exit-code rules."""
    if isinstance(job, Plan) and options.min_answers > len(job.questions):
        raise InputError(
            f"--min-answers {options.min_answers}: the plan has only {len(job.questions)} "
            "questions, so no synthesis could be made"
        )
    fresh = config is None  # the plan's endpoints, unless --endpoints gives some
    config = config or run_config(options, endpoints=plan_model.get("endpoints") or ())
    if options.plan_only:
        return _plan_only(job, plan_model, config)
    prepare(options)
    if fresh:
        announce(options, config)
    settings = model_settings(config, plan_model)
    check_schemas(lambda: check_structured(job, settings))
    session = _session(job, plan_model, settings, options, config, resume)
    streamed = options.stream and not (options.as_json or options.out)
    stream = SynthesisStream(sys.stdout, sys.stderr) if streamed else None

    used: list[Any] = []  # the engine the run made: an auto run's switch is in it

    async def body(current: Run) -> WorkflowResult:
        engine = current.engine(stream.observe if stream else None)
        used.append(engine)
        left = current.session.opened.config.seconds_left()
        if isinstance(job, Plan):
            return await run_workflow(
                job,
                engine,
                settings=settings,
                fail_fast=options.mode == "all",
                min_answers=options.min_answers,
                deadline=left,
                on_delta=stream,
                warm=options.warm,
            )
        return await run_stages(
            job,
            engine,
            settings=settings,
            deadline=left,
            on_delta=stream,
            warm=options.warm,
        )

    result, display = run(options, session, body)
    storage = _storage(result, session.prices)
    session.store.charge(storage or 0.0)
    by_path = None
    if config.engine == "auto":  # imported only then: the other engines need none of it
        from fanwise.cli.auto_view import totals, totals_line

        by_path = totals(session, used[0].dispatch if used else None)
    paths = {} if by_path is None else {"auto": by_path.to_dict()}
    cache = cache_report(_usages(result), session.prices, storage)
    context = job.context if isinstance(job, Plan) else any(s.context for s in job.stages)
    cached = cache.to_dict() if context or cache.cached_tokens or cache.written_tokens else None
    shown = {**session.to_dict(), **paths}
    if cached is not None:
        shown["cost"]["cache"] = cached
    summary = {**_summary(result, session, shown["cost"]), **paths}
    if cached is not None:
        summary["cache"] = cached
    session.finish(result.status.value, reason=result.reason, summary=summary)
    delivered = stream is not None and stream.delivered
    document = _document(result, shown, as_json=options.as_json, delivered=delivered)
    failed: list[str] = []
    journal = config.journal_path
    if options.out:
        try:
            Path(options.out).write_text(document, encoding="utf-8")
        except OSError as exc:
            failed.append(unwritten("--out", options.out, exc, session, "show", journal))
    elif document:
        click.echo(document, nl=False)
    if options.report:
        try:
            _write_report(options.report, result, session, cached)
        except OSError as exc:
            failed.append(unwritten("--report", options.report, exc, session, "report", journal))
    for line in failed:
        click.echo(line, err=True)
    if result.plan is not None and display is not None:
        display.summary(result, session.cost_shown)
    elif result.plan is None and not options.quiet:
        click.echo(_stages_line(result, session.cost_shown), err=True)
    if by_path is not None and not options.quiet:
        click.echo(totals_line(by_path), err=True)
    if display is not None:
        said = cache.line()
        if said is not None:
            click.echo(f"💾 {said}", err=True)
        if isinstance(job, Plan) and job.context and config.provider == "offline":
            click.echo(_offline_cache_note(job, len(result.answers)), err=True)
    if result.reason:
        click.echo(f"fanwise: no {result.workflow.title}: {result.reason}", err=True)
    return session.exit_code(EXIT_NO_RESULT if failed else exit_code(result))


def _plan_only(job: Plan | Workflow, plan_model: Mapping[str, Any], config: RunConfig) -> int:
    """--plan-only: a research plan's calls forecast (the synthesis is one more, live); a plan
    of stages learns its later stages' calls as it runs, so it is refused."""
    if not isinstance(job, Plan):
        raise InputError(
            "--plan-only: a plan of stages learns its later stages' calls as it runs; plan its "
            "first stage's lines with fanwise batch --plan-only"
        )
    from fanwise.calls import Call
    from fanwise.cli.auto_view import plan_only, show_forecast

    settings = model_settings(config, plan_model)
    asked = (q if isinstance(q, Request) else Request.text(q, model=settings.model)
             for q in job.questions)  # fmt: skip
    show_forecast(plan_only((Call(request) for request in asked), config))
    return EXIT_OK


def _session(
    job: Plan | Workflow,
    plan_model: Mapping[str, Any],
    settings: ModelSettings,
    options: RunOptions,
    config: RunConfig,
    resume: int | None,
) -> Session:
    """The run in the journal: kind ``workflow`` (a research plan) or ``stages``, as ever, so
    journals written before read and resume the same."""
    if isinstance(job, Plan):
        return workflow_session(job, plan_model, settings, options, config, resume=resume)
    spec = {
        "workflow": job.to_dict(),
        "plan_model": dict(plan_model),
        "settings": dataclasses.asdict(settings),
    }
    return open_session(
        options,
        config,
        kind="stages",
        topic=job.topic or job.title,
        spec=spec,
        resume=resume,
        model=settings.model,
        models=job.models,  # each provider a plan names, its own model
    )


def _summary(result: WorkflowResult, session: Session, cost: Mapping[str, Any]) -> dict[str, Any]:
    """What the journal keeps of the result besides its calls: its shape (each stage as it
    ended; no text in a meta journal) and the ``cost`` the document shows, so that ``show``
    rebuilds the document this run prints."""
    summary: dict[str, Any] = {"stats": result.to_dict()["stats"]}
    if result.plan is None:
        summary["stages"] = result.summary()
    summary["shape"] = result_shape(result)
    summary["cost"] = dict(cost)
    summary["cost_usd"] = round(session.cost, 6)
    return summary


def _document(
    result: WorkflowResult, shown: Mapping[str, Any], *, as_json: bool, delivered: bool
) -> str:
    """What the run prints: the JSON document (``shown``: its run and cost), or the Markdown
    (less the text that already streamed to stdout)."""
    if as_json:
        return to_json(result, **shown)
    if result.plan is not None:
        return "" if delivered else to_markdown(result)
    return stage_markdown(result, text=not delivered)


def _write_report(
    path: str, result: WorkflowResult, session: Session, cache: Mapping[str, Any] | None
) -> None:
    run_id = None if session.run_id is None else str(session.run_id)
    if result.plan is not None:
        write_report(path, result, run_id=run_id, cost=session.cost_shown, cache=cache)
        return
    from fanwise.ui.stage_report import write_stages_report

    write_stages_report(path, result, cost=session.cost_shown, run_id=run_id, cache=cache)


def _stages_line(result: WorkflowResult, cost: float | str) -> str:
    stats = result.to_dict()["stats"]
    return (
        f"📊 {len(result.stages)} stages · {stats['calls']} calls: {stats['fulfilled']} "
        f"fulfilled, {stats['rejected']} rejected, {stats['cached']} from the journal · "
        f"{result.usage.total_tokens:,} tokens · {shown_cost(cost)}"
    )


def _storage(result: WorkflowResult, prices: PriceTable) -> float | None:
    """What the explicit context caches of the run cost to hold (None: a model unpriced)."""
    total: float | None = 0.0
    for stage in result.stages:
        held = stage.detail.get("explicit_cache")
        if held is None:
            continue
        cache = ExplicitCache("", str(held["model"]), int(held["tokens"]))
        cost = storage_cost(cache, float(held["seconds"]), prices)
        total = None if cost is None or total is None else total + cost
    return total


def _usages(result: WorkflowResult) -> list[tuple[str, Usage]]:
    """Each call's model and usage (answers reused from the journal cost nothing now)."""
    outcomes = result.outcomes
    return [
        (o.value.model if isinstance(o, Fulfilled) else "", outcome_usage(o))
        for o in outcomes
        if not (isinstance(o, Fulfilled) and o.cached)
    ]


def _offline_cache_note(plan: Plan, calls: int) -> str:
    """What a real provider would cache, said on the offline model (which caches nothing)."""
    size = tokens(plan.context_block or "")
    return (
        f"fanwise: the context is ~{size:,} tokens in each of {calls} research calls; the offline "
        f"model caches nothing. Against OpenAI or Anthropic, the first call would warm the "
        f"prompt cache and the other {calls - 1} would read the context from it, at about a "
        "tenth of the input price (docs/caching.md)."
    )


def exit_code(result: WorkflowResult) -> int:
    """0 complete, 4 partial, 1 no result; 2 when every call was refused for the key."""
    if result.status is Status.COMPLETE:
        return EXIT_OK
    if result.status is Status.PARTIAL:
        return EXIT_PARTIAL
    outcomes = result.outcomes
    if outcomes and all(isinstance(o, Rejected) and o.kind is ErrorKind.AUTH for o in outcomes):
        return EXIT_USAGE
    return EXIT_NO_RESULT


__all__ = ["execute", "exit_code", "research", "run_plan", "travel"]
