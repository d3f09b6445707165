"""The journal, cache and cost flags, shared by the workflow commands and ``fanwise batch``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fanwise.cli.numbers import FiniteRange


def journal_option() -> Callable[[Any], Any]:
    return click.option(
        "--journal",
        type=click.Path(dir_okay=False),
        metavar="PATH",
        help="The journal database [default: $FANWISE_HOME/journal.db, in the user data dir].",
    )


def journal_options() -> list[Callable[[Any], Any]]:
    """``--journal``, ``--no-journal``, ``--journal-content``, ``--on-journal-error``,
    ``--cache``, ``--max-cost`` and ``--prices``."""
    return [
        journal_option(),
        click.option(
            "--no-journal",
            is_flag=True,
            help="Write nothing to disk but the output asked for: no resume, no cache "
            "[also: FANWISE_JOURNAL=off].",
        ),
        click.option(
            "--journal-content",
            type=click.Choice(["full", "meta"]),
            default="full",
            show_default=True,
            envvar="FANWISE_JOURNAL_CONTENT",
            help="meta: journal the run's shape, status, timings, usage and cost, but no prompt "
            "or answer text (no resume).",
        ),
        click.option(
            "--on-journal-error",
            type=click.Choice(["stop", "continue"]),
            default="stop",
            show_default=True,
            help="When the journal cannot be written (a full disk): stop sending at once (the "
            "answers paid for stay in the output, exit 5), or continue unrecorded.",
        ),
        click.option(
            "--cache",
            is_flag=True,
            help="Answer identical calls (same model, settings, prompt) from the journal: free.",
        ),
        max_cost_option(),
        click.option(
            "--prices",
            type=click.Path(dir_okay=False),
            metavar="FILE",
            help="A price table laid over the built-in one [also read: $FANWISE_HOME/prices.toml].",
        ),
        click.option(
            "--price",
            multiple=True,
            metavar="MODEL=input=N,output=N",
            help="A model's price in US dollars per 1M tokens (also cached_input, cache_write, "
            "cache_write_1h), over the tables; repeatable. A model with no price has an "
            "unknown cost, never $0.",
        ),
    ]


def max_cost_option() -> Callable[[Any], Any]:
    return click.option(
        "--max-cost",
        type=FiniteRange(min=0),
        metavar="USD",
        help="Stop launching calls once the next one could take the cost past USD dollars.",
    )
