"""Exit codes and the one error the CLI shows for bad input: a leaf module every command imports.

The library raises its own errors (``ConfigError``, ``PlanError``...) in its own words; the CLI
turns them into a one-line message that names the flag to change (``translate``).
"""

from __future__ import annotations

from typing import IO, Any

import click

EXIT_OK = 0
"""Every call answered (and, for a workflow, the synthesis written)."""
EXIT_NO_RESULT = 1
"""Nothing to show: every call failed, the synthesis failed, or a fail-fast abort."""
EXIT_USAGE = 2
"""Bad input, found before any request was paid for; or every call refused for the key."""
EXIT_PARTIAL = 4
"""A result, with some calls failed: the output says what is missing."""
EXIT_UNRECORDED = 5
"""The journal could not record the run (a full disk): sending stopped at the first failed
write, the answers paid for are in the output, the run is marked ``unrecorded``."""
EXIT_OUTPUT_FAILED = 6
"""The output file could not be written (a full disk): sending stopped, every answer is in the
journal, the run is marked ``interrupted``; ``fanwise resume RUN`` writes the output again."""
EXIT_INTERRUPTED = 130
"""Ctrl-C: the run is kept in the journal, ``fanwise resume RUN`` finishes it. SIGTERM exits
143 and SIGHUP 129 (128 + the signal, ``fanwise.cli.interrupt``)."""
EXIT_CLOSED_PIPE = 141
"""The reader of stdout went away (``| head``): 128 + SIGPIPE, as ``cat`` or ``git log`` end.
A run stopped this way is interrupted in the journal, and ``fanwise resume RUN`` finishes it."""

SETTING_FLAGS = {
    "api_key": "--provider openai",
    "base_url": "--base-url",
    "endpoints": "--endpoints",
    "journal": "--journal",
    "min_answers": "--min-answers",
    "provider": "--provider",
    "transport": "--transport",
}
"""The flag a person changes for a library setting named in an error."""


class InputError(click.ClickException):
    """Bad input from the user: a clean one-line message and exit code 2, never a traceback."""

    exit_code = EXIT_USAGE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"fanwise: error: {self.format_message()}", err=True)


def flag_for(setting: str) -> str:
    """The flag that sets a library setting (``min_answers`` -> ``--min-answers``)."""
    return SETTING_FLAGS.get(setting, "--" + setting.replace("_", "-"))
