"""``fanwise travel``, ``fanwise research`` and ``fanwise run``: one workflow, three front doors."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from fanwise.cli.engines import build_engine
from fanwise.cli.interrupt import run_interruptible
from fanwise.cli.options import InputError, RunOptions, common_options
from fanwise.cli.session import Session, workflow_session
from fanwise.console import Display, choose_display
from fanwise.events import fan_out
from fanwise.models.base import Model
from fanwise.outcome import ErrorKind, Rejected
from fanwise.plans import PlanError, load_plan
from fanwise.report import to_json, to_markdown, write_report
from fanwise.stream import SynthesisStream
from fanwise.workflow import ModelSettings, Plan, Status, WorkflowResult, run_workflow

EXIT_OK, EXIT_NO_RESULT, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 4, 130


@click.command()
@click.argument("destination")
@common_options
def travel(destination: str, **kwargs: Any) -> None:
    """Research DESTINATION in parallel and write a travel guide (the seed's workflow).

    Three independent questions (attractions, transportation, culture) are asked at once; the
    answers that arrive are combined into one guide, which says what is missing.
    """
    options = RunOptions.from_kwargs(kwargs)
    loaded = _load("travel", {"destination": destination})
    sys.exit(execute(loaded.plan, loaded.model, options))


@click.command()
@click.argument("topic")
@click.option(
    "--question",
    "-q",
    "questions",
    multiple=True,
    required=True,
    help="A question to research (repeat for more); each is asked in parallel.",
)
@click.option("--instructions", help="Added to the synthesis prompt, e.g. 'a one-page brief'.")
@common_options
def research(
    topic: str, questions: tuple[str, ...], instructions: str | None, **kwargs: Any
) -> None:
    """Ask every -q QUESTION about TOPIC at once, then synthesize one answer."""
    options = RunOptions.from_kwargs(kwargs)
    if any(not q.strip() for q in questions):
        raise InputError("--question: a question must not be empty")
    plan = Plan(topic=topic, questions=tuple(questions))
    if instructions:
        plan = Plan(topic, plan.questions, f"{plan.synthesis}\n\n{instructions.strip()}")
    sys.exit(execute(plan, {}, options))


@click.command()
@click.argument("plan_file", metavar="PLAN")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Fill a plan variable, e.g. --set destination=Kyoto (repeatable).",
)
@common_options
def run(plan_file: str, assignments: tuple[str, ...], **kwargs: Any) -> None:
    """Run a plan: a TOML file of questions and synthesis instructions (or a built-in plan name)."""
    options = RunOptions.from_kwargs(kwargs)
    variables: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. --set destination=Kyoto")
        variables[key.strip()] = value
    loaded = _load(plan_file, variables)
    sys.exit(execute(loaded.plan, loaded.model, options))


def _load(source: str | Path, variables: Mapping[str, str]) -> Any:
    try:
        return load_plan(source, variables)
    except PlanError as exc:
        raise InputError(str(exc)) from None


def execute(
    plan: Plan, plan_model: Mapping[str, Any], options: RunOptions, *, resume: int | None = None
) -> int:
    """Run one workflow from resolved options; print the result; return the exit code."""
    if options.report and not Path(options.report).parent.is_dir():
        raise InputError(f"--report {options.report}: its directory does not exist")
    if plan_model.get("endpoints") and not options.endpoints:  # the plan's; --endpoints wins
        options = dataclasses.replace(options, endpoints=tuple(plan_model["endpoints"]))
    model = options.build_model()
    settings = options.settings(plan_model)
    session = workflow_session(plan, plan_model, settings, options, resume=resume)
    display = (
        None
        if options.quiet
        else choose_display(sys.stderr, plain=options.plain, price=session.price)
    )
    streamed = options.stream and not (options.as_json or options.out)
    stream = SynthesisStream(sys.stdout, sys.stderr) if streamed else None
    try:
        result = run_interruptible(_run(plan, model, settings, options, display, stream, session))
    except KeyboardInterrupt:
        click.echo(session.interrupted(), err=True)
        return EXIT_INTERRUPTED
    session.finish_workflow(result)
    document = to_json(result, **session.to_dict()) if options.as_json else to_markdown(result)
    if options.out:
        Path(options.out).write_text(document, encoding="utf-8")
    elif stream is None or not stream.delivered:
        click.echo(document, nl=False)
    if options.report:
        try:
            run_id = None if session.run_id is None else str(session.run_id)
            write_report(options.report, result, run_id=run_id, cost=session.cost)
        except OSError as exc:
            raise InputError(f"--report {options.report}: cannot write: {exc.strerror}") from None
    if display is not None:
        display.summary(result, session.cost)
    if result.reason:
        click.echo(f"fanwise: no {plan.title}: {result.reason}", err=True)
    return exit_code(result)


async def _run(
    plan: Plan,
    model: Model,
    settings: ModelSettings,
    options: RunOptions,
    display: Display | None = None,
    stream: SynthesisStream | None = None,
    session: Session | None = None,
) -> WorkflowResult:
    engine = build_engine(
        options,
        model,
        observer=fan_out(
            stream.observe if stream else None, display, session.budget if session else None
        ),
        session=session,
    )
    try:
        async with display.showing() if display else contextlib.nullcontext():
            return await run_workflow(
                plan,
                engine,
                settings=settings,
                fail_fast=options.mode == "all",
                min_answers=options.min_answers,
                deadline=options.deadline,
                on_delta=stream,
            )
    finally:
        close = getattr(model, "close", None)
        if close is not None:
            await close()


def exit_code(result: WorkflowResult) -> int:
    """0 complete, 4 partial, 1 no result; 2 when every call was refused for the key."""
    if result.status is Status.COMPLETE:
        return EXIT_OK
    if result.status is Status.PARTIAL:
        return EXIT_PARTIAL
    failures = [a.outcome for a in result.answers if isinstance(a.outcome, Rejected)]
    if (
        failures
        and all(f.kind is ErrorKind.AUTH for f in failures)
        and len(failures) == len(result.answers)
    ):
        return EXIT_USAGE
    return EXIT_NO_RESULT
