"""The event stream of a run: one sequence of plain records that every observer reads.

The engine emits; the displays (live view, plain lines), the streamed synthesis and the budget
listen. The journal and the report do not: they read outcomes. Times are seconds on the run's
clock (``Engine.clock``), so one timeline holds every call and every attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from fanwise.calls import SettledRecord
from fanwise.models.base import Completion, Request
from fanwise.outcome import Fulfilled, Rejected

Phase = Literal["research", "synthesis", "batch"]


@dataclass(frozen=True, slots=True)
class RunStarted:
    """A run began (a workflow, staged workflow, batch file or ``ask_all``); everything until
    ``RunFinished`` belongs to it."""

    kind: Literal["workflow", "stages", "batch", "ask_all"]
    name: str  # the plan's title or the batch file's name ("" for ask_all)
    topic: str
    at: float


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended: ``complete``, ``partial`` or ``no_result``; ``interrupted`` or ``error``
    when it raised. ``reason`` says why there is no result."""

    status: str
    at: float
    reason: str | None = None

    @classmethod
    def raised(cls, error: BaseException, at: float) -> RunFinished:
        """The end of a run that raised: ``interrupted`` (Ctrl-C, cancelled) or ``error``."""
        stopped = isinstance(error, KeyboardInterrupt | asyncio.CancelledError)
        return cls("interrupted" if stopped else "error", at, f"{type(error).__name__}: {error}")


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    phase: Phase
    total: int
    at: float


@dataclass(frozen=True, slots=True)
class PhaseFinished:
    phase: Phase
    at: float


@dataclass(frozen=True, slots=True)
class CallStarted:
    """An attempt of a call was sent (``attempt`` 1 is the launch). ``request`` is what is
    asked, for observers that describe it (telemetry)."""

    index: int
    key: str
    label: str
    attempt: int
    at: float
    request: Request | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CallRetrying:
    """An attempt failed with a retryable error; the next one starts after ``wait`` seconds."""

    index: int
    key: str
    label: str
    attempt: int
    error: dict[str, Any]
    wait: float
    at: float


@dataclass(frozen=True, slots=True)
class CallSettled:
    """A call ended for good, fulfilled or rejected (or answered from the journal: cached)."""

    index: int
    key: str
    label: str
    outcome: Fulfilled[Completion] | Rejected
    at: float
    record: SettledRecord | None = None
    """The engine's one record of the call (its cost among it); None from a worker's stream."""


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """A Batch API job moved on: its status (``validating``, ``in_progress``, ``finalizing``,
    ``completed``, ``expired``...) and how many of its ``total`` requests are done or failed."""

    batch_id: str
    status: str
    completed: int
    failed: int
    total: int
    at: float


@dataclass(frozen=True, slots=True)
class StageStarted:
    """A stage of a staged workflow began: ``total`` calls (a map's width, a vote's count)."""

    name: str
    kind: str
    total: int
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": "stage_started",
            "name": self.name,
            "kind": self.kind,
            "total": self.total,
            "at": self.at,
        }


@dataclass(frozen=True, slots=True)
class StageFinished:
    """A stage ended: its status and a short note (a route's choice, a vote's tally)."""

    name: str
    kind: str
    status: str
    note: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": "stage_finished",
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "note": self.note,
            "at": self.at,
        }


Event: TypeAlias = (
    RunStarted
    | RunFinished
    | PhaseStarted
    | PhaseFinished
    | CallStarted
    | CallRetrying
    | CallSettled
    | BatchProgress
    | StageStarted
    | StageFinished
)
Observer: TypeAlias = Callable[[Event], None]


def fan_out(*observers: Observer | None) -> Observer:
    """One observer that forwards each event to every given one, in order."""
    live = [o for o in observers if o is not None]

    def emit(event: Event) -> None:
        for observer in live:
            observer(event)

    return emit
