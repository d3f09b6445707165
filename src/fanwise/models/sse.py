"""Server-sent events, read from bytes as they arrive: the ``data`` of each event, nothing else.

Hand-written because aiohttp's line reader refuses a line over its buffer size (64 KiB), and a
``response.completed`` event carries the whole answer on one line. Only ``data:`` fields matter
to OpenAI-style streams (each event's JSON names its own type); comments, ``event:``, ``id:``
and ``retry:`` are skipped, as the SSE specification allows a client to.
"""

from __future__ import annotations


class SseLines:
    """Feed it chunks of bytes; it returns the data of every event those chunks complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += chunk
        events: list[str] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) != -1:
            self._line(bytes(self._buffer[start:end]), events)
            start = end + 1
        del self._buffer[:start]
        return events

    def close(self) -> list[str]:
        """The last event, when the stream ends without the blank line that should close it."""
        events: list[str] = []
        if self._buffer:
            self._line(bytes(self._buffer), events)
            self._buffer.clear()
        self._line(b"", events)
        return events

    def _line(self, raw: bytes, events: list[str]) -> None:
        line = raw.rstrip(b"\r").decode()
        if not line:
            if self._data:
                events.append("\n".join(self._data))
                self._data = []
        elif line.startswith("data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)


__all__ = ["SseLines"]
