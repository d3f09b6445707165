"""A reader that goes away (``fanwise batch FILE | head -2``) is not a crash.

Python ignores SIGPIPE, so a write to a closed pipe raises ``BrokenPipeError`` wherever it
happens: in a ``click.echo``, in a batch's result line, deep in a run's task group (there
wrapped in an ``ExceptionGroup``). One place handles it for every command, the group's
``invoke`` (``cli/__init__.py``): stdout is pointed at ``/dev/null``, so the interpreter's last
flush has nowhere to fail, and the command exits 141 (``EXIT_CLOSED_PIPE``). Before that, a run
in progress is marked interrupted by the runner (``cli/runner.py``): the calls already paid for
stay in the journal and ``fanwise resume RUN`` finishes it. A streamed synthesis handles its own
pipe (``ui/stream.py``): it runs to its end and the journal keeps it.

Any other failed write to stdout (``> /dev/full``, a full disk) is handled in the same place:
while a command runs, ``sys.stdout`` is a ``GuardedStdout`` that remembers the first such
error. The command's result is kept (a streamed synthesis stops writing and is still an answer;
the run is journaled as it ended), and the group prints one line on stderr (the cause, and
where the result is kept: ``kept``) and exits 6 (``EXIT_OUTPUT_FAILED``).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable
from typing import IO, Any


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


class GuardedStdout:
    """``sys.stdout`` while a command runs: the first failed write or flush that is not a closed
    pipe is remembered (``error``) and raised on; everything else is the stream's own."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.error: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            self.error = self.error or exc
            raise

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


_kept: list[str] = []  # where the result of the command running now is kept


def keep(where: str) -> None:
    """Say where the running command's result is kept, should stdout fail
    (``fanwise show RUN``)."""
    _kept[:] = [where]


def stdout_error() -> OSError | None:
    """The failed write to stdout of the command running now, if one failed."""
    return sys.stdout.error if isinstance(sys.stdout, GuardedStdout) else None


def only_os_errors(error: BaseException) -> bool:
    """Whether ``error`` is an ``OSError`` (alone, or all of a group)."""
    if isinstance(error, BaseExceptionGroup):
        _, rest = error.split(OSError)
        return rest is None
    return isinstance(error, OSError)


def stdout_failed(error: OSError) -> None:
    """The one line said when stdout could not be written; stdout is pointed at /dev/null so
    the interpreter's last flush does not fail again."""
    silence(sys.stdout)
    cause = error.strerror or str(error)
    where = f"; {_kept[0]}" if _kept and _kept[0] else ""
    note(f"fanwise: error: cannot write stdout ({cause}){where}")


__all__ = [
    "GuardedStdout",
    "keep",
    "note",
    "only_os_errors",
    "reader_gone",
    "silence",
    "stdout_error",
    "stdout_failed",
]
