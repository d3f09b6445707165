"""What a dispatch is: the one part of a run that differs between live, Batch API and Ray.

The engine owns the run (the journal, ``--max-cost`` admission, the deadline, fail-fast, events
and the order of results) and hands each call it means to send to its dispatch as a ``Ticket``.
The dispatch sends, in whatever way it sends (one request at a time, a batch file, a Ray
actor), records each attempt on the ticket, and reports each outcome to the ``Run`` the moment
it exists. A ticket outlives a cancellation: a call cut short by the deadline or a fail-fast
stop still settles with every attempt it made, the one cut short included.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Iterable, Set
from dataclasses import dataclass, field
from typing import Protocol

from fanwise.calls import Call, CallOutcome
from fanwise.events import Event
from fanwise.models.base import Completion, Request
from fanwise.outcome import Attempt, Fulfilled, Rejected, error_to_dict


@dataclass(slots=True)
class Ticket:
    """One call handed to a dispatch, and every attempt it has made so far."""

    index: int
    call: Call
    attempts: list[Attempt] = field(default_factory=list)
    first_start: float | None = None
    current: tuple[int, float, float] | None = None  # attempt number, start, wait before it
    queued: float = 0.0  # of the current attempt: seconds until the limiter let it go
    held_since: float | None = None  # set while the current attempt waits for the limiter
    via: str | None = None
    """The path the next attempts take in an ``--engine auto`` run (``"batch"``, ``"live"``),
    written on each attempt; None for the other engines."""
    gate: Awaitable[None] | None = None
    """Set when ``--max-cost`` holds the call until the calls in flight settle: a live dispatch
    awaits it before the first attempt (it raises when the call is refused after all)."""
    repaired: Request | None = None
    """What the next attempt sends when it is not ``call.request``: the request repaired after
    an answer broke its schema (``structured.next_request``), for a dispatch that sends the
    retry later (a follow-up batch, then live)."""

    @property
    def request(self) -> Request:
        """What the next attempt sends."""
        return self.call.request if self.repaired is None else self.repaired

    def begin(self, now: float, waited: float = 0.0) -> int:
        """An attempt starts now, ``waited`` seconds after the one before; its number."""
        number = len(self.attempts) + 1
        if self.first_start is None:
            self.first_start = now
        self.current = (number, now, waited)
        self.queued, self.held_since = 0.0, None
        return number

    def end(self, now: float, error: Exception | None = None) -> None:
        """The current attempt ended now, answered (``error`` None) or not."""
        assert self.current is not None, "end() without begin()"
        _, started, waited = self.current
        self.add(started, now, error, waited)

    def add(
        self, started: float, now: float, error: Exception | None = None, waited: float = 0.0
    ) -> None:
        """An attempt from ``started`` to now is over (a batch sees only each attempt's end)."""
        failure = None if error is None else error_to_dict(error)
        number = len(self.attempts) + 1
        self.attempts.append(
            Attempt(number, started, now - started, failure, waited, self.queued, self.via)
        )
        self.current = None

    def outcome(self, result: Completion | Exception, now: float) -> CallOutcome:
        """The call's outcome: its last result, and every attempt it made."""
        started = self.first_start if self.first_start is not None else now
        if isinstance(result, Exception):
            return Rejected(result, now - started, started, tuple(self.attempts))
        return Fulfilled(result, now - started, started, tuple(self.attempts))

    def cut(self, error: Exception, now: float) -> Rejected:
        """Stopped from outside (deadline, fail-fast): the attempt under way counts too."""
        if self.current is not None:
            if self.held_since is not None:
                self.queued = now - self.held_since
            self.end(now, error)
        outcome = self.outcome(error, now)
        assert isinstance(outcome, Rejected)
        return outcome


BATCH_DISCOUNT = 0.5
"""What the Batch API charges against the live price, for input and output tokens alike."""


def answered_via(outcome: CallOutcome) -> str | None:
    """The path whose attempt settled ``outcome`` in an ``--engine auto`` run: its last
    attempt's ``via`` (None for a journaled answer, and for the other engines)."""
    return outcome.attempts[-1].via if outcome.attempts else None


class Warm(enum.Enum):
    """How a dispatch that sends one call at a time warms a provider's prompt cache: it sends
    the first call alone, and the rest once the provider has cached the prefix they share."""

    OFF = "off"
    FIRST_TEXT = "first_text"
    """The first call streamed; the rest go when its first text arrives (the prompts fanwise
    builds: the research wall time grows by one time to first token)."""
    FIRST_ANSWER = "first_answer"
    """The rest go when the first call has settled: a body the user wrote is sent as written,
    so not streamed (``fanwise batch --cache-prefix``)."""


class Run(Protocol):
    """What a dispatch sees of the run it sends for: the clock, the events, the settling,
    and how to warm the prompt cache (``Warm``)."""

    warm: Warm

    def now(self) -> float:
        """Seconds on the run's time axis (every event and attempt uses it)."""
        ...

    def emit(self, event: Event) -> None:
        """Hand an event (a call started or retrying, a batch's progress) to the observers."""
        ...

    def settled(self, ticket: Ticket, outcome: CallOutcome) -> None:
        """The call of ``ticket`` ended for good; a second report of it is ignored."""
        ...

    async def cleared(self, ticket: Ticket) -> Exception | None:
        """Await just before ``ticket``'s first request goes out: the journal has committed
        everything before it (its sent mark too). A reason means: do not send it, settle it
        with that reason (the run halted: its journal failed, its output cannot be written)."""
        ...


class Dispatch(Protocol):
    """Sends calls. ``send`` is all a dispatch must write: subclass this for the defaults."""

    stops_early: bool = True
    """Whether a run can stop at its first failure (fail-fast): a batch already sent cannot."""
    deadline_note: str = ""
    """Said of the calls cut short by the deadline, after the deadline's own message."""
    marks_sent: bool = True
    """Whether the engine marks each call sent in the journal before handing it over (the
    write-ahead intent, counted after a crash as possibly paid): a Batch API batch outlives the
    process and a resume collects it, so it is not lost with a kill."""

    def carried(self) -> Set[tuple[int, str]]:
        """``(index, key)`` of calls an earlier process sent that this one will collect.

        They are paid for already, so the engine does not ask ``--max-cost`` to admit them.
        """
        return frozenset()

    async def send(self, tickets: Iterable[Ticket], run: Run) -> None:
        """Send every ticket and report each outcome to ``run.settled`` as it arrives.

        ``tickets`` is lazy: each is taken when the dispatch is ready for it (the engine looks
        it up in the journal and admits it then). Cancellation stops the sending; the engine
        settles the calls left open.
        """
        ...


__all__ = ["BATCH_DISCOUNT", "Dispatch", "Run", "Ticket", "Warm", "answered_via"]
