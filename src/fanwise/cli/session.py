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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fanwise.budget import Budget
from fanwise.cli.errors import EXIT_UNRECORDED, InputError
from fanwise.cli.options import RunOptions
from fanwise.factory import endpoint_label
from fanwise.journal import Content, CostStore, Journal, JournalError, JournalStore
from fanwise.models import choose_provider
from fanwise.models.base import Completion, Request
from fanwise.models.settings import ModelSettings
from fanwise.paths import fanwise_home, journal_path, private_dir
from fanwise.prices import (
    Price,
    PriceError,
    PriceTable,
    cost_text,
    format_usd,
    load_prices,
    parse_price_flag,
)
from fanwise.stages.research import Plan
from fanwise.stages.result import WorkflowResult

if TYPE_CHECKING:
    from fanwise.batchapi import JournalLedger

JOURNAL_OFF = ("off", "0", "false", "no")
"""Values of ``FANWISE_JOURNAL`` that turn the journal off, as ``--no-journal`` does."""

RESUME_OVERRIDES = (
    *("as_json", "out", "quiet", "plain", "stream", "report", "journal", "max_cost"),
    *("concurrency", "retries", "retry_with", "timeout", "rpm", "tpm", "base_url", "endpoints"),
)
"""Flags that change how a run is shown, paid for, paced or which server answers it, not what
it asks: a resume may."""


@dataclass
class Session:
    """A run being recorded: its journal, store, prices and (with ``--max-cost``) budget.

    Without a journal, ``journal`` and ``run_id`` are None and the store only counts the cost;
    ``resume_command`` is None when the run cannot be resumed (no journal, or no text kept).
    """

    journal: Journal | None
    run_id: int | None
    store: CostStore
    prices: PriceTable
    budget: Budget | None
    resume_command: str | None
    output: str = "the output"
    """Where the answers go, as the failure lines name it (``--out FILE``, or stdout)."""

    @property
    def failed_closed(self) -> bool:
        """The journal failed and the run stopped sending (``--on-journal-error stop``)."""
        return isinstance(self.store, JournalStore) and self.store.failure is not None

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
    def cost(self) -> float:
        """What this command's calls cost so far (cached and reused calls cost nothing)."""
        return self.store.spent

    @property
    def cost_shown(self) -> float | str:
        """The cost as the summary says it: dollars, or ``cost unknown for MODEL (...)`` with
        the priced part when some calls' model has no price (unpriced is not free)."""
        if not self.store.unpriced:
            return self.store.spent
        return cost_text(self.store.spent, self.store.unpriced_models)

    def price(self, completion: Completion) -> float | None:
        """The cost of one completion, for the live view."""
        return self.prices.cost(completion.model, completion.usage)

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
        if self.journal is not None and self.run_id is not None:
            try:
                self.journal.finish_run(
                    self.run_id, status, reason=reason, summary=summary, total=total
                )
            except sqlite3.Error as exc:
                click.echo(
                    f"fanwise: error: the journal could not even record that run {self.run_id} "
                    f"ended {status} ({exc}): `fanwise runs` will show it as stopped",
                    err=True,
                )
            self.journal.close()

    def finish_workflow(self, result: WorkflowResult) -> None:
        summary = {"stats": result.stats.to_dict(), "cost_usd": round(self.cost, 6)}
        self.finish(result.status.value, reason=result.reason, summary=summary)

    def engine_options(self) -> dict[str, Any]:
        """The engine's store and admission check for this run."""
        return {"store": self.store, "admit": self.budget.admit if self.budget else None}

    def ledger(self) -> JournalLedger | None:
        """Where ``--engine batch`` keeps its batches for a resume: none without a journal."""
        if self.journal is None or self.run_id is None:
            return None
        from fanwise.batchapi import JournalLedger  # loads the openai SDK: only when used

        return JournalLedger(self.journal, self.run_id)

    def interrupted(self, how: str = "Ctrl-C") -> str:
        """Mark the run interrupted (by ``how``: Ctrl-C, SIGTERM...); the line that says how to
        finish it, if it can be."""
        cancelled = "\nfanwise: interrupted: the calls in flight were cancelled"
        if self.journal is None or self.run_id is None:
            return f"{cancelled}; the journal is off, so nothing was kept and there is no resume."
        try:
            self.journal.finish_run(self.run_id, "interrupted", reason=f"interrupted ({how})")
        except sqlite3.Error as exc:
            cancelled += f" (the journal could not record it: {exc})"
        self.journal.close()
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
        unknown = self.store.unpriced
        cost: dict[str, Any] = {
            "usd": None if unknown else round(self.store.spent, 6),  # unpriced is not free
            "unpriced_calls": unknown,
            "prices_taken": self.prices.taken,
        }
        if unknown:
            cost["priced_usd"] = round(self.store.spent, 6)
            cost["unknown"] = cost_text(0.0, self.store.unpriced_models)
        if self.budget is not None:
            cost["max_usd"] = self.budget.limit
            cost["not_sent_for_budget"] = self.budget.refused
        return {
            "run": {
                "id": self.run_id,
                "journal": None if self.journal is None else str(self.journal.path),
                "resume": self.resume_command,
            },
            "cost": cost,
        }


def journal_off(options: RunOptions | None, environ: Mapping[str, str] = os.environ) -> bool:
    """``--no-journal``, or ``FANWISE_JOURNAL=off``: nothing of the run is written to disk."""
    off = environ.get("FANWISE_JOURNAL", "").strip().lower() in JOURNAL_OFF
    return off or (options is not None and options.no_journal)


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


def endpoint(options: RunOptions, environ: Mapping[str, str] = os.environ) -> str:
    """Who answers: the cache reuses only answers from the same endpoint."""
    provider = choose_provider(options.provider, environ, options.model, base_url=options.server)
    return endpoint_label(provider, api=options.api, base_url=options.base_url, seed=options.seed)


def options_spec(options: RunOptions, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The options as stored: the provider resolved, so a resume asks the same endpoint, and
    file paths made absolute, so it writes the same files from any directory."""
    data = dataclasses.asdict(options)
    data["provider"] = choose_provider(
        options.provider, environ, options.model, base_url=options.server
    )
    for name in ("out", "report", "prices"):
        if isinstance(data.get(name), str) and data[name]:
            data[name] = str(Path(data[name]).resolve())
    return data


def load_price_table(options: RunOptions, environ: Mapping[str, str] = os.environ) -> PriceTable:
    """The built-in prices, under ``$FANWISE_HOME/prices.toml``, ``--prices FILE`` and each
    ``--price MODEL=input=N,output=N`` (the last wins)."""
    user = [fanwise_home(environ) / "prices.toml"]
    if options.prices:
        if not Path(options.prices).is_file():
            raise InputError(f"--prices {options.prices}: no such file")
        user.append(Path(options.prices))
    try:
        table = load_prices(*user)
        given = dict(parse_price_flag(text) for text in options.price)
    except PriceError as exc:
        raise InputError(str(exc)) from None
    return PriceTable(given).over(table) if given else table


def open_session(
    options: RunOptions,
    *,
    kind: str,
    topic: str,
    spec: Mapping[str, Any],
    total: int | None = None,
    resume: int | None = None,
    model: str | None = None,
    environ: Mapping[str, str] = os.environ,
    lines: Mapping[int, int] | None = None,
) -> Session:
    """Start a run in the journal (or reopen run ``resume``) and build what records it.

    ``model``, when every call uses one, is checked up front against the price table so that
    ``--max-cost`` can refuse to start rather than refuse every call. ``lines`` is a batch's
    map of call index to input line (``run_batch``'s ``line_of``), journaled with each call.
    """
    check_journal_flags(options, environ)
    prices = load_price_table(options, environ)
    if options.engine == "batch":  # half price (a workflow's one live synthesis call too)
        # Imported here: the batchapi package loads the openai SDK (0.5 s and 23 MB at every
        # CLI start otherwise; docs/benchmarks.md).
        from fanwise.batchapi.prices import batch_prices

        prices = batch_prices(prices)
    where = endpoint(options, environ)
    offline = where.startswith("offline/")
    budget = None
    if options.max_cost is not None:

        def price_of(request: Request) -> Price | None:
            return prices.price("offline" if offline else request.model)

        patient = options.engine == "live"  # a batch's calls go at once: no holding them
        budget = Budget(options.max_cost, prices, price_of=price_of, patient=patient)
        if model is not None and price_of(Request.text("", model=model)) is None:
            raise InputError(
                f"--max-cost: model {model!r} has no price, so the budget cannot bound it; give "
                f"one with --price {model}=input=N,output=N (US dollars per 1M tokens), in "
                f"{fanwise_home(environ) / 'prices.toml'} or with --prices FILE"
            )
    if journal_off(options, environ):
        return Session(None, None, CostStore(prices=prices), prices, budget, None)
    content = Content(options.journal_content)
    journal = open_journal(options.journal, environ, content=content)
    if resume is None:
        run_id = journal.start_run(kind, topic, spec, endpoint=where, total=total)
    else:
        run_id = resume
        journal.reopen_run(run_id)
    store = JournalStore(
        journal,
        run_id,
        prices=prices,
        endpoint=where,
        resume=resume is not None,
        cache=options.cache,
        lines=lines,
        on_error="continue" if options.on_journal_error == "continue" else "stop",
    )
    command: str | None = f"fanwise resume {run_id}"
    if options.journal:
        command = f"{command} --journal {shlex.quote(options.journal)}"
    if content is Content.META:
        command = None  # no prompt kept to send again, no answer to reuse
    output = f"--out {options.out}" if options.out else "stdout"
    session = Session(journal, run_id, store, prices, budget, command, output)
    journal.on_write_error = session.journal_failed
    return session


def workflow_spec(
    plan: Plan,
    plan_model: Mapping[str, Any],
    settings: ModelSettings,
    options: RunOptions,
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """Everything ``fanwise resume`` needs to run this workflow again without its flags."""
    return {
        "plan": plan.to_dict(),
        "plan_model": dict(plan_model),
        "settings": dataclasses.asdict(settings),
        "options": options_spec(options, environ),
    }


def workflow_session(
    plan: Plan,
    plan_model: Mapping[str, Any],
    settings: ModelSettings,
    options: RunOptions,
    *,
    resume: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Session:
    return open_session(
        options,
        kind="workflow",
        topic=plan.topic,
        spec=workflow_spec(plan, plan_model, settings, options, environ),
        total=len(plan.questions) + 1,
        resume=resume,
        model=settings.model,
        environ=environ,
    )
