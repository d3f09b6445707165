"""The plain values that pass between the simulator's brain and its HTTP server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Fate:
    """A fault imposed on one request (``"ok"`` for none), with its optional timings."""

    fault: str | None
    retry_after: float | None = None
    latency: float | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What to do with one request: ``answer`` (``body`` after ``delay``), ``drop`` or ``hang``.

    A streamed answer sends ``body`` at once and ``tail`` after ``delay``, the time to the first
    token. ``drop`` closes the connection after ``delay`` without a word; ``hang`` never answers.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON
    delay: float = 0.0
    tail: bytes | None = None
    action: Literal["answer", "drop", "hang"] = "answer"


__all__ = ["JSON", "SSE", "Fate", "Reply"]
