"""The run loop: every call through the journal, ``--max-cost``, a dispatch, events, in order.

``Engine.run`` is the one loop whatever sends the calls. For each call, lazily, it looks in the
store (a journaled answer is reused, no request), asks ``admit`` (``--max-cost``), and hands the
rest to its dispatch as tickets: ``Live`` by default, the Batch API or Ray when given. Each
outcome the dispatch reports is journaled, emitted and handed on the moment it exists. The
deadline and fail-fast stop the dispatch and settle the calls it had open (with the attempt
under way) and those never handed over. The engine owns no terminal and no file: observers and
the store are handed in.

A store may also mark each call as sent before its request goes out (``intend``, the journal's
write-ahead intent) and make each request wait for the commit of everything recorded before it
(``committed``), which can answer with a reason to send no more (the journal failed). ``halt``
stops the sending for any reason (an output that cannot be written): from then on every call
not yet sent settles ``Rejected`` with that reason, and the calls in flight finish.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Set
from typing import TypeVar

from fanwise.calls import Call, CallOutcome, SettledRecord, Store, request_key
from fanwise.dispatch.base import Dispatch, Ticket, Warm
from fanwise.dispatch.live import Live
from fanwise.events import CallSettled, Event, Observer, RunFinished, RunStarted
from fanwise.limits import Limiter
from fanwise.models.base import DeltaSink, Model
from fanwise.outcome import CallTimeout, Cancelled, Fulfilled, Rejected
from fanwise.retry import RetryBudget, RetryPolicy
from fanwise.structured import reparse
from fanwise.telemetry import attach

OnOutcome = Callable[[int, Call, CallOutcome], None]
T = TypeVar("T")


class Engine:
    """Fan calls out through a dispatch (live by default) under the journal, budget, deadline."""

    def __init__(
        self,
        model: Model,
        *,
        dispatch: Dispatch | None = None,
        concurrency: int = 8,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        limiter: Limiter | None = None,
        store: Store | None = None,
        observer: Observer | None = None,
        admit: Callable[[Call], Awaitable[None] | None] | None = None,
        price: Callable[[Call, CallOutcome], float | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        seed: int | None = None,
        repair: bool = True,
    ) -> None:
        self.live = Live(
            model,
            concurrency=concurrency,
            timeout=timeout,
            retry=retry,
            retry_budget=retry_budget,
            limiter=limiter,
            sleep=sleep,
            seed=seed,
            repair=repair,
        )
        """Sends the synthesis (``complete``), and ``run``'s calls unless ``dispatch`` is given."""
        self.dispatch: Dispatch = dispatch or self.live
        self.store = store
        self.observer = attach(observer, model=model, store=store)  # spans, if OTel is set up
        self.admit = admit  # called before a call is handed over; raising refuses it (--max-cost)
        self.price = price or getattr(store, "cost_of", None)
        """What a settled call cost: priced once, into its ``SettledRecord`` (by default at the
        store's prices, ``CostStore.cost_of``)."""
        self.clock = clock
        self.origin = clock()
        self.halted: Exception | None = None

    def halt(self, reason: Exception) -> None:
        """Send no more requests: every call not yet sent settles ``Rejected`` with ``reason``
        (say ``Cancelled("not sent: ...")``) for its caller, but is neither journaled nor
        announced as a failure (a resume sends it); the calls in flight finish. The first
        reason stays."""
        if self.halted is None:
            self.halted = reason

    @property
    def model(self) -> Model:
        return self.live.model

    def now(self) -> float:
        """Seconds since the engine was made: the shared time axis of every event."""
        return self.clock() - self.origin

    def emit(self, event: Event) -> None:
        if self.observer is not None:
            self.observer(event)

    async def announced(
        self,
        started: RunStarted,
        work: Awaitable[T],
        finished: Callable[[T], tuple[str, str | None]],
    ) -> T:
        """``work`` framed by ``started`` and a ``RunFinished`` with the status and reason
        ``finished`` reads from its result, or ``interrupted``/``error`` when it raises: every
        kind of run (a workflow, stages, a batch, ``ask_all``) is one run span in telemetry."""
        self.emit(started)
        try:
            result = await work
        except BaseException as exc:
            self.emit(RunFinished.raised(exc, self.now()))
            raise
        status, reason = finished(result)
        self.emit(RunFinished(status, self.now(), reason))
        return result

    async def run(
        self,
        calls: Iterable[Call],
        *,
        deadline: float | None = None,
        fail_fast: bool = False,
        on_outcome: OnOutcome | None = None,
        keep: bool = True,
        first_index: int = 0,
        warm: Warm | bool = Warm.OFF,
        on_settled: Callable[[SettledRecord], None] | None = None,
    ) -> list[CallOutcome]:
        """Run every call; the outcomes come back in input order (``keep=False`` keeps none).

        Calls are numbered from ``first_index`` (a staged workflow numbers all its stages'
        calls as one sequence, so each has its own row in the journal and the live view).

        With ``fail_fast`` the first rejection cancels the calls still running; they come back as
        ``Cancelled``, and the calls that had finished are kept. ``deadline`` (seconds) settles
        the calls not finished by then as timeouts. ``on_settled`` hears each call's
        ``SettledRecord`` (its cost among it) as ``on_outcome`` hears its outcome. With
        ``warm`` (calls that share a long prefix: ``fanwise.context``) the first call goes
        alone, and the others follow once the provider has cached the prefix (``Warm``;
        ``True`` is ``Warm.FIRST_TEXT``); a dispatch that sends all at once, a batch, ignores
        it.
        """
        if deadline is not None and deadline <= 0:
            raise ValueError(f"deadline must be a positive number of seconds, got {deadline}")
        if fail_fast and not self.dispatch.stops_early:
            raise ValueError(
                f"{type(self.dispatch).__name__} cannot stop at the first failure: use mode settled"
            )
        run = _Run(self, on_outcome, keep, fail_fast, self.dispatch.carried())
        run.marks = getattr(self.dispatch, "marks_sent", True)
        run.on_settled = on_settled
        run.warm = Warm.FIRST_TEXT if warm is True else Warm.OFF if warm is False else warm
        source = enumerate(calls, first_index)
        run.scope = scope = asyncio.timeout(deadline)
        expired = False
        try:
            async with scope:
                await self.dispatch.send(run.tickets(source), run)
        except TimeoutError:
            if not scope.expired():
                raise
            expired = True
        if run.stopped:
            run.cut(
                source,
                lambda: Cancelled("a sibling call failed (fail-fast mode)"),
                lambda: Cancelled("not started: a call failed (fail-fast)"),
            )
        elif expired:
            note = self.dispatch.deadline_note
            run.cut(
                source,
                lambda: CallTimeout(f"deadline of {deadline:g}s passed while running{note}"),
                lambda: CallTimeout(f"not started: deadline of {deadline:g}s passed"),
            )
        else:
            lost = f"{type(self.dispatch).__name__} ended without an outcome for this call"
            run.cut(source, lambda: RuntimeError(lost), lambda: RuntimeError(lost))
        await run.committed()
        return [run.results[i] for i in sorted(run.results)]

    async def complete(
        self, call: Call, *, index: int = 0, on_delta: DeltaSink | None = None
    ) -> CallOutcome:
        """One call on its own, live (the synthesis), with the same journal, budget and events."""
        run = _Run(self, None, keep=True, fail_fast=False, carried=frozenset())
        ticket = run.ticket(index, call)
        if ticket is not None:
            blocked = await run.cleared(ticket)
            if blocked is not None:
                run.settled(ticket, ticket.outcome(blocked, self.now()))
            else:
                run.settled(ticket, await self.live.outcome(ticket, run, on_delta))
        await run.committed()
        return run.results[index]


class _Run:
    """One ``run``: the calls handed to the dispatch and not settled yet, and their outcomes."""

    def __init__(
        self,
        engine: Engine,
        on_outcome: OnOutcome | None,
        keep: bool,
        fail_fast: bool,
        carried: Set[tuple[int, str]],
    ) -> None:
        self.engine = engine
        self.on_outcome = on_outcome
        self.on_settled: Callable[[SettledRecord], None] | None = None
        self.keep = keep
        self.fail_fast = fail_fast
        self.carried = carried  # sent by an earlier process: paid for, so not admitted again
        self.open: dict[int, Ticket] = {}
        self.results: dict[int, CallOutcome] = {}
        self.scope: asyncio.Timeout | None = None  # the deadline's; fail-fast ends it at once
        self.stopped = False
        self.marks = True  # mark each call sent in the store before it goes (Dispatch.marks_sent)
        self.warm = Warm.OFF  # how the first call warms the prompt cache for the rest

    def tickets(self, source: Iterator[tuple[int, Call]]) -> Iterator[Ticket]:
        """The calls to send, as the dispatch takes them; the others settle on the way."""
        while not self.stopped and (item := next(source, None)) is not None:
            ticket = self.ticket(*item)
            if ticket is not None:
                yield ticket

    def now(self) -> float:
        return self.engine.now()

    def emit(self, event: Event) -> None:
        self.engine.emit(event)

    def ticket(self, index: int, call: Call) -> Ticket | None:
        """A ticket for a call to send, marked sent in the store; None when it settled here
        (journaled, refused, or the sending halted)."""
        if self._reused(index, call):
            return None
        engine = self.engine
        ticket = Ticket(index, call)
        self.open[index] = ticket
        store = engine.store
        halted = engine.halted or getattr(store, "failure", None)
        if halted is not None:
            engine.halt(halted)
            self.settled(ticket, Rejected(halted, 0.0, self.now()))
            return None
        if engine.admit is not None and (index, call.key) not in self.carried:
            try:
                ticket.gate = engine.admit(call)  # a gate holds the call until it may go
            except Exception as exc:
                self.settled(ticket, Rejected(exc, 0.0, self.now()))
                return None
        intend = getattr(store, "intend", None) if self.marks else None
        if intend is not None:
            intend(index, call)
        return ticket

    async def cleared(self, ticket: Ticket) -> Exception | None:
        """Wait, before ``ticket``'s request goes out, for the store to commit everything
        recorded before it (its sent mark too); the reason not to send it, or None."""
        await self.committed()
        return self.engine.halted

    async def committed(self) -> None:
        """Wait for the store's commit of everything recorded so far; a failure it reports
        halts the sending."""
        committed = getattr(self.engine.store, "committed", None)
        if committed is None:
            return
        reason = await committed()
        if reason is not None:
            self.engine.halt(reason)

    def settled(self, ticket: Ticket, outcome: CallOutcome) -> None:
        """Journal, emit and hand on an outcome, once; a rejection stops a fail-fast run."""
        if self.open.pop(ticket.index, None) is None:
            return
        self._record(ticket.index, ticket.call, outcome)
        if not (self.fail_fast and isinstance(outcome, Rejected)) or self.scope is None:
            return
        if not self.scope.expired():  # once: the scope then expires, and stays so
            self.stopped = True
            self.scope.reschedule(asyncio.get_running_loop().time())

    def _record(self, index: int, call: Call, outcome: CallOutcome) -> None:
        engine = self.engine
        price = engine.price
        settled = SettledRecord(
            index, call, outcome, None if price is None else price(call, outcome)
        )
        if self._unsent(outcome):
            # Never sent because the run halted (its output or journal failed): not a failed
            # call. No row and no event (no "❌" line, no FAILED count); its sent mark, if it
            # has one, is withdrawn, and a resume sends it.
            withdraw = getattr(engine.store, "withdraw", None)
            if withdraw is not None:
                withdraw(index)
        else:
            if engine.store is not None:
                engine.store.record(settled)
            self.emit(CallSettled(index, call.key, call.label, outcome, self.now(), settled))
        if self.on_outcome is not None:
            self.on_outcome(index, call, outcome)
        if self.on_settled is not None:
            self.on_settled(settled)
        if self.keep:
            self.results[index] = outcome

    def _unsent(self, outcome: CallOutcome) -> bool:
        """Whether ``outcome`` is a call the halt kept from being sent (no attempt made)."""
        halted = self.engine.halted
        return (
            halted is not None
            and isinstance(outcome, Rejected)
            and outcome.error is halted
            and not outcome.attempts
        )

    def cut(
        self,
        source: Iterator[tuple[int, Call]],
        running: Callable[[], Exception],
        unstarted: Callable[[], Exception],
    ) -> None:
        """Settle the calls left open, then those never handed over (a journaled one is reused)."""
        self.scope = None  # over: nothing stops twice
        for ticket in list(self.open.values()):
            error = unstarted() if ticket.first_start is None else running()
            self.settled(ticket, ticket.cut(error, self.now()))
        for index, call in source:
            if not self._reused(index, call):
                self._record(index, call, Rejected(unstarted(), 0.0, self.now()))

    def _reused(self, index: int, call: Call) -> bool:
        """Settle ``call`` with its journaled answer, if the store has one."""
        store = self.engine.store
        cached = store.lookup(call) if store is not None else None
        if cached is not None:
            value = reparse(cached.value, call.schema)  # a pydantic instance is not journaled
            self._record(index, call, Fulfilled(value, 0.0, self.now(), (), cached=True))
        return cached is not None


__all__ = ["Call", "CallOutcome", "Engine", "Store", "request_key"]
