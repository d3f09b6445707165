"""A reader that goes away (``fanwise batch FILE | head -2``) is not a crash.

Python ignores SIGPIPE, so a write to a closed pipe raises ``BrokenPipeError`` wherever it
happens: in a ``click.echo``, in a batch's result line, deep in a run's task group (there
wrapped in an ``ExceptionGroup``). One place handles it for every command, the group's
``invoke`` (``cli/__init__.py``): stdout is pointed at ``/dev/null``, so the interpreter's last
flush has nowhere to fail, and the command exits 141 (``EXIT_CLOSED_PIPE``). Before that, a run
in progress is marked interrupted by the runner (``cli/runner.py``): the calls already paid for
stay in the journal and ``fanwise resume RUN`` finishes it. A streamed synthesis handles its own
pipe (``ui/stream.py``): it runs to its end and the journal keeps it.
"""

from __future__ import annotations

import io
import os
import sys
from typing import IO


def reader_gone(error: BaseException) -> bool:
    """Whether ``error`` is a closed pipe and nothing else (alone, or all of a group)."""
    if isinstance(error, BrokenPipeError):
        return True
    if isinstance(error, BaseExceptionGroup):
        pipes, rest = error.split(BrokenPipeError)
        return pipes is not None and rest is None
    return False


def silence(stream: IO[str]) -> None:
    """Point ``stream``'s file descriptor at /dev/null: what is still buffered for the closed
    pipe is flushed there at exit, not into an "Exception ignored" message."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def note(line: str) -> None:
    """``line`` on stderr, unless stderr went away too (``2>&1 | head``)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except BrokenPipeError:
        silence(sys.stderr)


__all__ = ["note", "reader_gone", "silence"]
