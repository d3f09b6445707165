"""What a person watching a run sees on stderr: a live view on a terminal, plain lines elsewhere.

``choose_display`` decides once, from the stream and the flags: a rich live view when stderr is a
terminal, the seed's plain lines (``🔄 Asking``, ``✅ Answered``, ``❌ Failed``) when it is not or
with ``--plain``. ``NO_COLOR`` turns colour off in the live view; the plain lines have none.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import IO, TYPE_CHECKING, Protocol

from fanwise.events import Event
from fanwise.stages.result import WorkflowResult
from fanwise.ui.periodic import PeriodicConsole
from fanwise.ui.plain import PlainConsole, shorten, summary_line
from fanwise.ui.progress import Price

if TYPE_CHECKING:  # rich loads only for a live view
    from fanwise.ui.live import LiveConsole, summary_table


class Display(Protocol):
    """An event observer that also owns its screen's lifetime and the end-of-run summary."""

    def __call__(self, event: Event) -> None: ...

    def showing(self) -> AbstractAsyncContextManager[None]: ...

    def summary(self, result: WorkflowResult, cost: float | str | None = None) -> None: ...


def is_live_terminal(stream: IO[str], environ: Mapping[str, str]) -> bool:
    """A terminal that can redraw in place: a TTY whose TERM is not ``dumb``."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and environ.get("TERM", "") not in ("dumb", "unknown")


def choose_display(
    stream: IO[str],
    *,
    clock: Callable[[], float] = time.monotonic,
    plain: bool = False,
    price: Price | None = None,
    environ: Mapping[str, str] = os.environ,
    periodic: bool = False,
    total: int | None = None,
) -> Display:
    """The live view on a terminal; the plain lines with ``plain`` or when not a terminal,
    except that with ``periodic`` (a batch) and no ``plain``, a non-terminal gets a line of
    counts every few seconds and the failures (``ui/periodic.py``)."""
    if plain:
        return PlainConsole(stream)
    if not is_live_terminal(stream, environ):
        return (
            PeriodicConsole(stream, total=total, clock=clock) if periodic else PlainConsole(stream)
        )
    from rich.console import Console

    from fanwise.ui.live import LiveConsole

    console = Console(file=stream, no_color=bool(environ.get("NO_COLOR")), highlight=False)
    return LiveConsole(console, clock=clock, price=price)


def __getattr__(name: str) -> object:
    """``LiveConsole`` and ``summary_table``, from ``fanwise.ui.live`` when first asked for."""
    if name in ("LiveConsole", "summary_table"):
        from fanwise.ui import live

        return getattr(live, name)
    raise AttributeError(f"module 'fanwise.ui.console' has no attribute {name!r}")


__all__ = [
    "Display",
    "LiveConsole",
    "PeriodicConsole",
    "PlainConsole",
    "choose_display",
    "is_live_terminal",
    "shorten",
    "summary_line",
    "summary_table",
]
