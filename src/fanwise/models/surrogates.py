"""A character a server split across two stream events, joined again.

A server that cuts its deltas by UTF-16 code units (JavaScript's string length, for one) can
send an emoji as two events: ``"\\ud83c"`` then ``"\\udf5c end"``. JSON carries each half as an
escape, so each event decodes to a string with a lone surrogate, which no encoder will write
(stdout, the journal). Every stream reader passes its deltas through a ``Halves``: a trailing
high surrogate is held back until the next delta brings its low half. A half that never finds
its pair becomes U+FFFD, so the text can always be written.
"""

from __future__ import annotations


def whole(text: str) -> str:
    """``text`` with each surrogate pair joined into its character and any lone half as U+FFFD."""
    if text.isascii():  # most answers: 0.1 µs
        return text
    try:
        text.encode()  # 0.7 µs for 350 accented characters; a regex search took 3.7
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


class Halves:
    """Feed it deltas; it gives back text safe to write, holding a trailing high surrogate."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        """The writable part of what has come so far (a trailing high half waits for its pair)."""
        if self._held:
            text, self._held = self._held + text, ""
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self._held = text[:-1], text[-1]
        return whole(text)

    def flush(self) -> str:
        """What is still held when the stream ends: a lone half, as U+FFFD (or nothing)."""
        held, self._held = self._held, ""
        return whole(held)


__all__ = ["Halves", "whole"]
