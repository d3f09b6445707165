"""A batch's output: whole lines or nothing, and a failure that stops the run, not crashes it.

A full disk used to tear the last line (``{"id":"batc``) and end the run in a traceback. Here
each line is written whole with ``os.write`` (one system call a line, as the flushed text stream
made before); a write that fails is cut back to the end of the last whole line with
``ftruncate``, the error is kept (``error``), and every later line is dropped: the caller stops
the run (``Engine.halt``), and the journal keeps the answers for ``fanwise resume``.
"""

from __future__ import annotations

import contextlib
import os
from typing import IO


class LineSink:
    """Writes lines to a file descriptor (``fd``) or a text stream (stdout), whole."""

    def __init__(self, *, fd: int | None = None, stream: IO[str] | None = None) -> None:
        if (fd is None) == (stream is None):
            raise ValueError("give a file descriptor or a stream")
        self.fd = fd
        self.stream = stream
        self.size = 0  # bytes of whole lines written (to a file)
        self.error: OSError | None = None

    def write(self, line: str) -> bool:
        """Write ``line`` and its newline; False (and nothing written) once writing failed."""
        if self.error is not None:
            return False
        try:
            if self.fd is None:
                assert self.stream is not None
                self.stream.write(line + "\n")
                self.stream.flush()
            else:
                self._write(self.fd, (line + "\n").encode())
        except BrokenPipeError:
            if self.fd is None:  # stdout's reader went away: the command's own case (cli/pipes)
                raise
            self.error = BrokenPipeError()
            return False
        except OSError as exc:
            self.error = exc
            self._cut()
            return False
        return True

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        self.size += len(data)

    def _cut(self) -> None:
        """Drop a line written in part: the file ends with the last whole line."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)


def open_file(path: str, *, append: bool = False) -> int:
    """A file descriptor to write lines to ``path`` (created with the user's umask)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    return os.open(path, flags, 0o666)


__all__ = ["LineSink", "open_file"]
