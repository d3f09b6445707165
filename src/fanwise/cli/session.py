"""One command's run in the journal: open it, record into it, close it with a status.

Wiring only: the journal, the store, the price table and the budget are library objects; this
module picks them from the flags, writes the run's spec (what ``fanwise resume`` needs to run it
again: never the API key) and turns their state into the lines a person reads. With
``--no-journal`` (or ``FANWISE_JOURNAL=off``) a session records nothing: it only counts the cost.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click

from fanwise.budget import Budget
from fanwise.cli import pipes
from fanwise.cli.errors import EXIT_UNRECORDED, InputError, flag_for
from fanwise.cli.options import RunOptions
from fanwise.config import OpenRun, RunConfig, open_run
from fanwise.config.run_config import journal_disabled
from fanwise.factory import ConfigError
from fanwise.journal import Content, CostStore, Journal, JournalError, JournalStore
from fanwise.models.base import Completion
from fanwise.models.settings import ModelSettings
from fanwise.paths import fanwise_home, journal_path, private_dir
from fanwise.prices import PriceTable, cost_text, format_usd
from fanwise.stages.research import Plan
from fanwise.stages.result import WorkflowResult

RESUME_OVERRIDES = (
    *("as_json", "out", "quiet", "plain", "stream", "report", "journal", "max_cost"),
    *("concurrency", "retries", "retry_with", "timeout", "rpm", "tpm", "base_url", "endpoints"),
)
"""Flags that change how a run is shown, paid for, paced or which server answers it, not what
it asks: a resume may."""


CLI_WORDS = {
    "api_key": "--provider openai needs an API key: set OPENAI_API_KEY "
    "(or use --base-url for a local OpenAI-compatible server)",
}
"""The library's errors that read better in the CLI's own words."""


def config_error(exc: ConfigError) -> InputError:
    """A library setting error as the CLI says it: with the flag that sets it."""
    if exc.setting == "journal_path":
        return InputError(f"{exc} (choose another file with --journal PATH)")
    model = getattr(exc, "model", None)
    if exc.setting == "max_cost" and model is not None:
        home = fanwise_home()
        return InputError(
            f"--max-cost: model {model!r} has no price, so the budget cannot bound it; give "
            f"one with --price {model}=input=N,output=N (US dollars per 1M tokens), in "
            f"{home / 'prices.toml'} or with --prices FILE"
        )
    message = str(exc).replace("pass a prices file", "pass --prices FILE")
    flag = flag_for(exc.setting)
    if exc.setting == "prices_file" or message.startswith(flag + " "):
        return InputError(CLI_WORDS.get(exc.setting) or message)  # it names what to fix
    return InputError(CLI_WORDS.get(exc.setting) or f"{flag}: {message}")


class Session:
    """A run being recorded (the library's ``OpenRun``), and the lines a person reads about it.

    Without a journal, ``journal`` and ``run_id`` are None and the store only counts the cost;
    ``resume_command`` is None when the run cannot be resumed (no journal, or no text kept).
    """

    def __init__(self, opened: OpenRun, output: str = "the output") -> None:
        self.opened = opened
        opened.interrupt_reason = None  # marked by ``interrupted``, which knows the signal
        self.output = output
        """Where the answers go, as the failure lines name it (``--out FILE``, or stdout)."""

    @property
    def failed_closed(self) -> bool:
        """The journal failed and the run stopped sending (``--on-journal-error stop``)."""
        return self.opened.failed_closed

    def exit_code(self, code: int) -> int:
        """The command's exit code: ``EXIT_UNRECORDED`` when the journal failed closed."""
        return EXIT_UNRECORDED if self.failed_closed else code

    def journal_failed(self, error: Exception) -> None:
        """The journal's first failed write, said at once (one line, with the cause)."""
        if isinstance(self.store, JournalStore) and self.store.on_error == "continue":
            click.echo(
                f"fanwise: warning: the journal could not record a call ({error}); sending on "
                "(--on-journal-error continue): what it misses, a resume would ask again",
                err=True,
            )
            return
        click.echo(
            f"fanwise: error: the journal could not record a call ({error}): stopped sending; "
            f"the calls in flight finish into {self.output}",
            err=True,
        )

    @property
    def journal(self) -> Journal | None:
        return self.opened.journal

    @property
    def run_id(self) -> int | None:
        return self.opened.run_id

    @property
    def store(self) -> CostStore:
        return self.opened.store

    @property
    def prices(self) -> PriceTable:
        return self.opened.prices

    @property
    def budget(self) -> Budget | None:
        return self.opened.budget

    @property
    def resume_command(self) -> str | None:
        return self.opened.resume_command

    @property
    def cost(self) -> float:
        """What this command's calls cost so far (cached and reused calls cost nothing)."""
        return self.opened.cost

    @property
    def cost_shown(self) -> float | str:
        """The cost as the summary says it: dollars, or ``cost unknown for MODEL (...)`` with
        the priced part when some calls' model has no price (unpriced is not free)."""
        if not self.store.unpriced:
            return self.store.spent
        return cost_text(self.store.spent, self.store.unpriced_models)

    def price(self, completion: Completion) -> float | None:
        """The cost of one completion, for the live view."""
        return self.opened.price(completion)

    def finish(
        self,
        status: str,
        *,
        reason: str | None = None,
        summary: Mapping[str, Any] | None = None,
        total: int | None = None,
    ) -> None:
        """Close the run with its status (``unrecorded`` when the journal failed closed); tell
        the user if the budget stopped launches or the journal lost calls."""
        for note in (self.budget_note(), self.journal_note()):
            if note is not None:
                click.echo(note, err=True)
                reason = f"{reason}; {note}" if reason else note
        if self.failed_closed:
            status = "unrecorded"
        pipes.keep(self.kept())
        try:
            self.opened.finish(status, reason=reason, summary=summary, total=total)
        except sqlite3.Error as exc:
            click.echo(
                f"fanwise: error: the journal could not even record that run {self.run_id} "
                f"ended {status} ({exc}): `fanwise runs` will show it as stopped",
                err=True,
            )

    def finish_workflow(self, result: WorkflowResult) -> None:
        self.finish(
            result.status.value, reason=result.reason, summary={"stats": result.stats.to_dict()}
        )

    def kept(self) -> str:
        """Where the run's result is kept, for a command whose stdout failed."""
        if self.journal is None or self.run_id is None:
            return "the journal is off, so the result is not kept anywhere"
        command = f"fanwise show {self.run_id}"
        path = self.opened.config.journal_path
        if path:
            command += f" --journal {shlex.quote(path)}"
        return f"run {self.run_id} is kept in the journal: {command}"

    def interrupted(self, how: str = "Ctrl-C") -> str:
        """Mark the run interrupted (by ``how``: Ctrl-C, SIGTERM...); the line that says how to
        finish it, if it can be."""
        cancelled = "\nfanwise: interrupted: the calls in flight were cancelled"
        if self.journal is None or self.run_id is None:
            self.opened.stop(f"interrupted ({how})")
            return f"{cancelled}; the journal is off, so nothing was kept and there is no resume."
        try:
            self.opened.stop(f"interrupted ({how})")
        except sqlite3.Error as exc:
            cancelled += f" (the journal could not record it: {exc})"
        if self.resume_command is None:
            return (
                f"{cancelled}; the journal kept no prompts or answers (--journal-content meta), "
                "so there is no resume."
            )
        return (
            f"{cancelled}; every finished call is kept in the journal. Finish the run with: "
            f"{self.resume_command}"
        )

    def journal_note(self) -> str | None:
        store = self.store
        if self.failed_closed:
            assert isinstance(store, JournalStore)
            lost = f"{store.unrecorded} settled calls" if store.unrecorded else "the run"
            return (
                f"fanwise: error: the journal could not record {lost} ({store.write_error}), "
                f"so fanwise stopped sending; run {self.run_id} is marked unrecorded. Every "
                f"answer paid for is in {self.output}: keep it. {self.recovery()}"
            )
        if not store.unrecorded:
            return None
        return (
            f"fanwise: warning: the journal could not record {store.unrecorded} settled calls "
            f"({store.write_error}); their answers are in this output, but a resume would ask "
            "them again"
        )

    def recovery(self) -> str:
        """How to get the rest once the journal can be written again."""
        if self.resume_command is None:
            return "Free some space and run the command again."
        if self.output.startswith("--out"):
            return (
                f"Once the journal's disk has room, {self.resume_command} takes those answers "
                "back from the output file and sends only the rest."
            )
        return (
            f"Once the journal's disk has room, {self.resume_command} sends the rest, and asks "
            "again what the journal missed."
        )

    def budget_note(self) -> str | None:
        budget = self.budget
        if budget is None or not budget.refused:
            return None
        if not budget.stopped:
            return (
                f"fanwise: --max-cost: {budget.refused} calls not sent: their model has no price "
                "(give one with --price MODEL=input=N,output=N or --prices FILE)"
            )
        stopped = (
            f"fanwise: --max-cost {format_usd(budget.limit)}: stopped launching calls; "
            f"{budget.refused} not sent, {format_usd(budget.spent)} spent."
        )
        if self.resume_command is None:
            return f"{stopped} To send them, run the command again with more --max-cost"
        return f"{stopped} To send them, run {self.resume_command} --max-cost MORE"

    def to_dict(self) -> dict[str, Any]:
        """What the JSON output says about the run and its cost."""
        return self.opened.info().to_dict()


def journal_off(options: RunOptions | None, environ: Mapping[str, str] = os.environ) -> bool:
    """``--no-journal``, or ``FANWISE_JOURNAL=off``: nothing of the run is written to disk."""
    return journal_disabled(environ) or (options is not None and options.no_journal)


def check_journal_flags(options: RunOptions, environ: Mapping[str, str] = os.environ) -> None:
    """Flags that contradict ``--no-journal``: a usage error before any request."""
    if not journal_off(options, environ):
        return
    why = "--no-journal" if options.no_journal else "FANWISE_JOURNAL=off"
    for flag, given in (
        ("--cache", options.cache),
        ("--journal", bool(options.journal)),
        ("--journal-content", options.journal_content != Content.FULL),
    ):
        if given:
            raise InputError(f"{flag} needs the journal, and {why} turns it off")


def notice(line: str) -> None:
    """A one-line notice on stderr (a journal file found readable by others, and tightened)."""
    click.echo(line, err=True)


def open_journal(
    explicit: str | None,
    environ: Mapping[str, str] = os.environ,
    *,
    purpose: str = "this command",
    content: Content = Content.FULL,
) -> Journal:
    """The journal named by ``--journal`` or ``$FANWISE_HOME``; a clean error if unusable.

    The fanwise home is made (or tightened to) ``0700``; a ``--journal`` elsewhere lives in a
    directory the user chose, and only a missing one is created ``0700``.
    """
    if journal_off(None, environ):
        raise InputError(f"{purpose} needs the journal, and FANWISE_JOURNAL=off turns it off")
    path = journal_path(explicit, environ)
    try:
        if not explicit:
            private_dir(path.parent, notice)
        return Journal.open(
            path, secrets=[environ.get("OPENAI_API_KEY")], content=content, notify=notice
        )
    except JournalError as exc:
        raise InputError(f"{exc} (choose another file with --journal PATH)") from None
    except OSError as exc:
        raise InputError(
            f"cannot open the journal {path}: {exc.strerror} (choose another file with "
            "--journal PATH)"
        ) from None


CLI_SPEC = (
    *("out", "report", "quiet", "plain", "stream", "as_json", "mode", "min_answers"),
    "cache_prefix",
)
"""The flags a resume needs besides the run's config: how its result was shown and written,
and how a batch's lines were marked for the prompt cache."""


def cli_spec(options: RunOptions) -> dict[str, Any]:
    """What the journal keeps of the flags that are not the run's config (paths absolute, so a
    resume writes the same files from any directory)."""
    data = {name: getattr(options, name) for name in CLI_SPEC}
    for name in ("out", "report"):
        if data[name]:
            data[name] = str(Path(data[name]).resolve())
    return data


def open_session(
    options: RunOptions,
    config: RunConfig,
    *,
    kind: str,
    topic: str,
    spec: Mapping[str, Any],
    total: int | None = None,
    resume: int | None = None,
    model: str | None = None,
    models: Iterable[str] = (),
    environ: Mapping[str, str] = os.environ,
    lines: Mapping[int, int] | None = None,
) -> Session:
    """Start a run in the journal (or reopen run ``resume``) and build what records it: the
    library's ``open_run``, its errors in the CLI's words.

    ``model``, when every call uses one, is checked up front against the price table so that
    ``--max-cost`` can refuse to start rather than refuse every call. ``lines`` is a batch's
    map of call index to input line (``run_batch``'s ``line_of``), journaled with each call.
    """
    try:
        opened = open_run(
            config,
            kind=kind,
            topic=topic,
            spec={**spec, "cli": cli_spec(options)},
            total=total,
            resume=resume,
            priced_model=model,
            models=models,
            lines=lines,
            environ=environ,
            notify=notice,
        )
    except ConfigError as exc:
        raise config_error(exc) from None
    session = Session(opened, f"--out {options.out}" if options.out else "stdout")
    if opened.journal is not None:
        opened.journal.on_write_error = session.journal_failed
    return session


def workflow_spec(
    plan: Plan, plan_model: Mapping[str, Any], settings: ModelSettings, options: RunOptions
) -> dict[str, Any]:
    """Everything ``fanwise resume`` needs to run this workflow again besides its config."""
    return {
        "plan": plan.to_dict(),
        "plan_model": dict(plan_model),
        "settings": dataclasses.asdict(settings),
        "args": {
            "min_answers": options.min_answers,
            "fail_fast": options.mode == "all",
            "warm": options.warm,
        },
    }


def workflow_session(
    plan: Plan,
    plan_model: Mapping[str, Any],
    settings: ModelSettings,
    options: RunOptions,
    config: RunConfig,
    *,
    resume: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Session:
    return open_session(
        options,
        config,
        kind="workflow",
        topic=plan.topic,
        spec=workflow_spec(plan, plan_model, settings, options),
        total=len(plan.questions) + 1,
        resume=resume,
        model=settings.model,
        models=(m for ms in plan.question_models for m in ms),
        environ=environ,
    )
