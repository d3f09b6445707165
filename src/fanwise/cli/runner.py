"""What every run command does around its own work: one place for setup and teardown.

Before any request: the ``--out`` and ``--report`` paths are checked, and the run opened
(``fanwise.config.open_run``: the engine's combination refused if it cannot run, the model
built, the run started in the journal). Then the display (live view or plain lines) is shown
for the run's length, the first Ctrl-C stops it cleanly (the resume line, exit 130), and the
model is closed however the run ends.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import click

from fanwise.cli import pipes
from fanwise.cli.interrupt import Interrupted, exit_code, run_interruptible
from fanwise.cli.options import RunOptions
from fanwise.cli.output_paths import check_writable
from fanwise.cli.session import Session, config_error
from fanwise.engine import Engine
from fanwise.events import Observer, fan_out
from fanwise.factory import ConfigError
from fanwise.models.base import Model

if TYPE_CHECKING:
    from fanwise.ui.console import Display

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Run:
    """What a command's body works with: its options, journal session and display."""

    options: RunOptions
    session: Session
    display: Display | None

    @property
    def model(self) -> Model:
        return self.session.opened.model

    def engine(self, *observers: Observer | None) -> Engine:
        """The engine the config asks for; events go to ``observers``, the display and budget."""
        quiet = self.options.quiet
        note = None if quiet else lambda line: click.echo(line, err=True)
        return self.session.opened.engine(fan_out(*observers, self.display), note=note)


def prepare(options: RunOptions) -> None:
    """Check what can be checked before any request: every file the run will write."""
    for flag, path in (("--out", options.out), ("--report", options.report)):
        if path:
            check_writable(flag, path)


def run(
    options: RunOptions,
    session: Session,
    body: Callable[[Run], Awaitable[T]],
    *,
    total: int | None = None,
) -> tuple[T, Display | None]:
    """Run ``body`` under the display with the two-stage Ctrl-C, then close the model.

    ``total`` (a batch's line count) asks, without a terminal, for a line of counts every few
    seconds rather than a line per call, unless ``--plain`` (``ui/periodic.py``).

    On Ctrl-C (or SIGTERM, SIGHUP) the run is marked interrupted, the resume line printed, and the
    command exits 130 (143, 129); when the reader of stdout goes away, the same, then 141; when
    stdout cannot be written (a full disk), the same, then one line and 6.
    """
    from fanwise.ui.console import choose_display  # rich loads only for a run that shows it

    display = (
        None
        if options.quiet
        else choose_display(
            sys.stderr,
            plain=options.plain,
            price=session.price,
            periodic=total is not None,
            total=total,
        )
    )

    async def main() -> T:
        showing = display.showing() if display else contextlib.nullcontext()
        async with session.opened, showing:
            return await body(Run(options, session, display))

    try:
        return run_interruptible(main()), display
    except KeyboardInterrupt as stop:
        how = stop.name if isinstance(stop, Interrupted) else "Ctrl-C"
        click.echo(session.interrupted(how), err=True)
        raise click.exceptions.Exit(exit_code(stop)) from None
    except (OSError, BaseExceptionGroup) as error:
        if pipes.reader_gone(error):
            pipes.silence(sys.stdout)
            pipes.note(session.interrupted("stdout closed"))
        elif pipes.stdout_error() is not None and pipes.only_os_errors(error):
            session.interrupted("stdout could not be written")
            resume = session.resume_command
            pipes.keep(f"run {session.run_id} is interrupted: {resume}" if resume else "")
        raise  # the group ends the command (cli/pipes.py)
    except ConfigError as exc:  # found as the engine starts (joining a Ray cluster)
        raise config_error(exc) from None


__all__ = ["Run", "prepare", "run"]
