"""The synthesis on stdout as the model writes it, in a terminal and through a pipe.

The hard case is a retry after part of the text has already streamed. What was written cannot be
taken back from a terminal or a pipe, so the writer says so and starts over:

- stdout is a file (``> guide.md``, seekable): the partial text is cut off the file (``truncate``),
  so the file ends up holding exactly one clean copy; a note on stderr says so.
- stdout is a terminal or a pipe: a note on stderr says that attempt N broke off after so many
  characters and that the text after it starts over; in a terminal the new text starts on a fresh
  line. Whoever needs a byte-exact copy through a pipe uses ``--no-stream`` (or ``--out`` or
  ``--json``), which print the result only once it is complete.

The same holds when the synthesis fails for good after streaming part of its text: the file is
cut back, or stderr says the text above is incomplete, and the answers that did arrive follow.
The writer is both the ``on_delta`` sink and an event observer: the events tell it when an attempt
of the synthesis restarts or ends.

A reader that goes away (``fanwise travel Kyoto | head -3``) is not a failed call: on the first
broken pipe the writer stops writing (stdout is pointed at ``/dev/null``, so nothing complains at
exit), the synthesis runs to its end and the journal keeps it whole. Any other failed write
(``> /dev/full``) stops the writing the same way: the synthesis is still an answer, and the
command says that stdout failed once it ends (``cli/pipes.py``). Nor is a character the
terminal cannot encode: it is written as ``?``, never lost with the rest of the answer.
"""

from __future__ import annotations

import io
import os
from typing import IO

from fanwise.events import CallRetrying, CallSettled, Event, PhaseFinished, PhaseStarted
from fanwise.outcome import Fulfilled
from fanwise.ui.plain import shorten


class SynthesisStream:
    """Writes the synthesis to ``out`` as it streams; notes on ``err`` anything it cannot undo."""

    def __init__(self, out: IO[str], err: IO[str]) -> None:
        self.out = out
        self.err = err
        self.active = False
        self.delivered = False  # the whole synthesised text is on ``out``, once, and ends with \n
        self.gone = False  # the reader closed the pipe: nothing more is written anywhere
        self.restarts = 0
        self._parts: list[str] = []
        self._origin: int | None = None

    @property
    def streamed(self) -> str:
        """The text of the current attempt written so far."""
        return "".join(self._parts)

    def __call__(self, text: str) -> None:
        """The ``on_delta`` sink: one piece of the current attempt's text."""
        if not text:
            return
        if not self._parts:
            self._origin = self._tell()
        self._parts.append(text)
        self._write(text)

    def observe(self, event: Event) -> None:
        """The event observer: only the synthesis phase matters here."""
        match event:
            case PhaseStarted(phase="synthesis"):
                self.active = True
            case PhaseFinished(phase="synthesis"):
                self.active = False
            case CallRetrying(attempt=attempt, error=error) if self.active and self._parts:
                why = f"{error['kind']}: {shorten(str(error.get('message', '')), 100)}"
                self._take_back(
                    f"synthesis attempt {attempt} failed after {len(self.streamed):,} characters "
                    f"had streamed ({why}); attempt {attempt + 1} starts over"
                )
                self.restarts += 1
            case CallSettled(outcome=outcome) if self.active:
                if isinstance(outcome, Fulfilled):
                    self._complete(outcome.value.text)
                elif self._parts:
                    self._take_back(
                        f"the synthesis failed after {len(self.streamed):,} characters had "
                        "streamed; that text is incomplete"
                    )

    def _complete(self, text: str) -> None:
        """Make what is on ``out`` exactly the final text (a cached or non-streaming model
        wrote nothing yet; a model that streamed all of it leaves only the newline)."""
        streamed = self.streamed
        if text.startswith(streamed):
            self._write(text[len(streamed) :])
        else:
            self._take_back("the streamed text differs from the final answer; printing it whole")
            self._write(text)
        if not text.endswith("\n"):
            self._write("\n")
        self.delivered = True

    def _take_back(self, what: str) -> None:
        if self.gone:  # nobody reads stdout any more: no note about text nobody will see
            self._parts.clear()
            return
        if self._origin is not None and self._truncate(self._origin):
            self._note(f"{what}: the partial text was removed from the output file")
        else:
            if self._is_terminal() and not self.streamed.endswith("\n"):
                self._write("\n")
            self._note(f"{what}: the text above this note on stdout is not the final text")
        self._parts.clear()
        self._origin = None

    def _write(self, text: str) -> None:
        if not text or self.gone:
            return
        try:
            try:
                self.out.write(text)
            except UnicodeEncodeError:  # a terminal that cannot show a character: show "?"
                self.out.write(_encodable(text, self.out))
            self.out.flush()
        except OSError:  # a closed pipe, a full disk: the answer is kept all the same
            self.gone = True
            _silence(self.out)

    def _note(self, text: str) -> None:
        print(f"↻ fanwise: {text}", file=self.err, flush=True)

    def _tell(self) -> int | None:
        try:
            self.out.flush()
            return self.out.tell() if self.out.seekable() else None
        except (OSError, ValueError, io.UnsupportedOperation):
            return None

    def _truncate(self, origin: int) -> bool:
        try:
            self.out.flush()
            self.out.seek(origin)
            self.out.truncate()
        except (OSError, ValueError, io.UnsupportedOperation):
            return False
        return True

    def _is_terminal(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())


def _encodable(text: str, out: IO[str]) -> str:
    """``text`` as ``out``'s encoding can carry it: what it cannot becomes ``?`` (a lone
    surrogate half too), so a received answer is never lost to an encoding error; the journal
    and ``--out`` keep it whole."""
    encoding = getattr(out, "encoding", None) or "utf-8"
    return text.encode(encoding, "replace").decode(encoding, "replace")


def _silence(out: IO[str]) -> None:
    """Point ``out``'s file descriptor at /dev/null, so the interpreter's last flush of the
    text still buffered does not fail on the closed pipe (an "Exception ignored" at exit)."""
    try:
        fd = out.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
