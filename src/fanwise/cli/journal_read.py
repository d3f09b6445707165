"""Opening the journal for commands that only read it: they never create one.

``fanwise show 1 --journal missing.db`` used to create ``missing.db``, an empty journal that then
answered "no run 1". A command that only reads says instead that there is no journal there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import click

from fanwise.cli.errors import InputError
from fanwise.cli.session import journal_off, open_journal
from fanwise.journal import Journal
from fanwise.paths import journal_path

RUN_ID = click.IntRange(min=1, max=2**63 - 1)
"""A run id as the journal stores it (SQLite's INTEGER): a larger number is a usage error."""


def journal_exists(explicit: str | None, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the journal named by ``--journal`` (or the default one) is there to read (with
    the journal turned off, opening it says so)."""
    return journal_off(None, environ) or journal_path(explicit, environ).is_file()


def read_journal(
    explicit: str | None, environ: Mapping[str, str] = os.environ, *, purpose: str = "this command"
) -> Journal:
    """The existing journal named by ``--journal`` or ``$FANWISE_HOME``; never a new file."""
    path = journal_path(explicit, environ)
    if not journal_exists(explicit, environ):
        where = "--journal " + explicit if explicit else "the default journal"
        raise InputError(f"{where}: no journal at {path} (no runs recorded there yet)")
    return open_journal(explicit, environ, purpose=purpose)


def process_alive(pid: int | None) -> bool:
    """Whether the process that started a run is still there (a running run is not pruned)."""
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
