"""The one run loop with a dispatch of its own: the engine journals, admits, orders and stops."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from fanwise import Call, Engine, ErrorKind, Fulfilled, Rejected, Request
from fanwise.calls import SettledRecord
from fanwise.dispatch import Dispatch, Run, Ticket
from fanwise.events import CallSettled, CallStarted, Event
from fanwise.models.base import Completion
from fanwise.outcome import BadRequest, Cancelled
from tests.scripted import ScriptedModel


class MemoryStore:
    """A store in a dict: what ``record`` keeps, ``lookup`` finds."""

    def __init__(self) -> None:
        self.kept: dict[str, Fulfilled[Completion]] = {}
        self.recorded: list[int] = []

    def lookup(self, call: Call) -> Fulfilled[Completion] | None:
        return self.kept.get(call.key)

    def record(self, settled: SettledRecord) -> None:
        self.recorded.append(settled.index)
        if isinstance(settled.outcome, Fulfilled):
            self.kept[settled.call.key] = settled.outcome


class AllAtOnce(Dispatch):
    """Takes every ticket first (a batch would), then answers them in reverse order, twice."""

    def __init__(self, fail: str = "") -> None:
        self.fail = fail
        self.sent: list[str] = []

    async def send(self, tickets: Iterable[Ticket], run: Run) -> None:
        taken = list(tickets)
        self.sent = [t.call.request.prompt for t in taken]
        for ticket in taken:
            run.emit(CallStarted(ticket.index, ticket.call.key, "", ticket.begin(run.now()), 0))
        await asyncio.sleep(0)
        for ticket in reversed(taken):
            prompt = ticket.call.request.prompt
            result = BadRequest("no") if prompt == self.fail else Completion(f"batch: {prompt}")
            ticket.end(run.now(), result if isinstance(result, Exception) else None)
            outcome = ticket.outcome(result, run.now())
            run.settled(ticket, outcome)
            run.settled(ticket, outcome)  # a second report of a call is ignored
            await asyncio.sleep(0)


class Stalled(Dispatch):
    """Starts every ticket's first attempt, then never answers."""

    deadline_note = "; it keeps going elsewhere"

    def __init__(self) -> None:
        self.cancelled = False

    async def send(self, tickets: Iterable[Ticket], run: Run) -> None:
        for ticket in tickets:
            ticket.begin(run.now())
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def calls(*prompts: str) -> list[Call]:
    return [Call(Request.text(p)) for p in prompts]


async def test_outcomes_come_back_in_input_order_each_settled_and_journaled_once() -> None:
    """Answers reported in reverse, twice each: input order, one CallSettled and record each."""
    store, events = MemoryStore(), list[Event]()
    engine = Engine(ScriptedModel(), dispatch=AllAtOnce(), store=store, observer=events.append)
    outcomes = await engine.run(calls("a", "b", "c"))
    assert [o.value.text for o in outcomes if isinstance(o, Fulfilled)] == [
        "batch: a",
        "batch: b",
        "batch: c",
    ]
    assert sorted(store.recorded) == [0, 1, 2]
    assert sorted(e.index for e in events if isinstance(e, CallSettled)) == [0, 1, 2]
    assert all(len(o.attempts) == 1 and o.attempts[0].ok for o in outcomes)


async def test_journaled_and_refused_calls_never_reach_the_dispatch() -> None:
    """A call the store answers is reused, a call admission refuses is rejected: neither sent."""
    store = MemoryStore()
    [answered] = await Engine(ScriptedModel(), store=store).run(calls("known"))
    assert isinstance(answered, Fulfilled)

    def admit(call: Call) -> None:
        if call.request.prompt == "dear":
            raise Cancelled("not sent: over budget")

    dispatch = AllAtOnce()
    engine = Engine(ScriptedModel(), dispatch=dispatch, store=store, admit=admit)
    known, dear, fresh = await engine.run(calls("known", "dear", "fresh"))
    assert isinstance(known, Fulfilled) and known.cached
    assert isinstance(dear, Rejected) and "budget" in dear.message
    assert isinstance(fresh, Fulfilled) and fresh.value.text == "batch: fresh"
    assert dispatch.sent == ["fresh"]


async def test_calls_a_dispatch_carries_over_are_not_admitted_again() -> None:
    """A call an earlier process sent (``carried``) is paid for: admission is not asked."""

    class Resumed(AllAtOnce):
        def carried(self) -> frozenset[tuple[int, str]]:
            return frozenset({(0, calls("old")[0].key)})

    asked: list[str] = []
    engine = Engine(
        ScriptedModel(), dispatch=Resumed(), admit=lambda call: asked.append(call.request.prompt)
    )
    outcomes = await engine.run(calls("old", "new"))
    assert all(o.ok for o in outcomes)
    assert asked == ["new"]


async def test_the_deadline_stops_the_dispatch_and_settles_its_calls_with_the_attempt_cut() -> None:
    """At the deadline the dispatch is cancelled; its calls are timeouts with their attempt."""
    dispatch = Stalled()
    outcomes = await Engine(ScriptedModel(), dispatch=dispatch).run(calls("a", "b"), deadline=0.05)
    assert dispatch.cancelled
    for outcome in outcomes:
        assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.TIMEOUT
        assert outcome.message.endswith("while running; it keeps going elsewhere")
        [attempt] = outcome.attempts
        assert attempt.error is not None and attempt.duration >= 0.04


async def test_fail_fast_stops_any_dispatch_at_the_first_rejection() -> None:
    """The first rejection ends the dispatch; what it had not answered settles as cancelled."""
    dispatch = AllAtOnce(fail="c")  # answered first, as answers come in reverse
    outcomes = await Engine(ScriptedModel(), dispatch=dispatch).run(
        calls("a", "b", "c"), fail_fast=True
    )
    assert [o.kind for o in outcomes if isinstance(o, Rejected)] == [
        ErrorKind.CANCELLED,
        ErrorKind.CANCELLED,
        ErrorKind.BAD_REQUEST,
    ]


async def test_a_dispatch_that_cannot_stop_early_refuses_fail_fast() -> None:
    """fail_fast on a dispatch that cannot stop at its first failure is a clear error."""

    class Batchlike(AllAtOnce):
        stops_early = False

    with pytest.raises(ValueError, match="first failure"):
        await Engine(ScriptedModel(), dispatch=Batchlike()).run(calls("a"), fail_fast=True)


async def test_a_call_the_dispatch_forgot_is_rejected_not_lost() -> None:
    """A dispatch that ends without reporting a call: the call still comes back, rejected."""

    class Forgetful(Dispatch):
        async def send(self, tickets: Iterable[Ticket], run: Run) -> None:
            list(tickets)

    [outcome] = await Engine(ScriptedModel(), dispatch=Forgetful()).run(calls("a"))
    assert isinstance(outcome, Rejected) and "without an outcome" in outcome.message


async def test_a_deadline_in_a_fail_fast_run_settles_every_call_as_a_timeout() -> None:
    """With fail_fast on, the deadline's own rejections do not stop the run a second time."""
    outcomes = await Engine(ScriptedModel(), dispatch=Stalled()).run(
        calls("a", "b"), deadline=0.05, fail_fast=True
    )
    assert [o.kind for o in outcomes if isinstance(o, Rejected)] == [ErrorKind.TIMEOUT] * 2
