"""``--engine auto``: the Batch API's price until the deadline needs live calls.

``Auto`` sends every call in a batch (half price) and watches two estimates: when the batch will
be done (its progress counts) and how long the lines it has not done would take live (the
limiter's knowledge, ``dispatch/deadline.py``). At the last safe moment it cancels the batch,
keeps every line the batch completed (paid at batch price) and sends only the rest live. Lines
the batch reports failed or expired go live as they come back. A deadline too short even for
all-live sends everything live at once, with no batch.

A line is answered by exactly one path. Each ticket is in one state: ``batch`` (in a batch),
``queued`` (waiting for a live slot: its batch answer is still kept if it arrives first),
``live`` (sent live: a batch answer for it is dropped, and counted in ``twice``) or ``done``.
After the switch the live calls take the lines in reverse input order (batches run roughly in
order, so the last lines are the least likely done) and hold back as many lines as the batch
reported completed until its result files say which: no live call goes to a line the batch
completed unless the batch ran its lines out of order. Every attempt says its path
(``Attempt.via``), so the journal prices a batch answer at the batch price.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Set
from typing import Any

from fanwise.batchapi.client import Batches
from fanwise.batchapi.files import Api, BatchLimits, Oversized, pack, request_line
from fanwise.batchapi.jobs import Jobs
from fanwise.batchapi.ledger import Job, Ledger, NoLedger
from fanwise.batchapi.results import Result
from fanwise.dispatch.base import Dispatch, Run, Ticket, answered_via
from fanwise.dispatch.deadline import (
    DEFAULT_LATENCY,
    LAST_RESORT,
    POLL_FLOOR,
    Forecast,
    LiveEstimate,
    Planner,
    Switch,
    forecast,
    live_estimate,
)
from fanwise.dispatch.live import Live
from fanwise.events import BatchProgress, CallStarted, Event
from fanwise.limits import request_tokens
from fanwise.models.base import Completion
from fanwise.outcome import CallError, Cancelled, is_retryable
from fanwise.structured import attempts_usage, checked, next_request

Note = Callable[[str], None]


class Auto(Dispatch):
    """Batch price for every line the batch answers in time; live for the rest."""

    stops_early = False
    deadline_note = "; its batch keeps running, and a resume of this run collects it"

    def __init__(
        self,
        batches: Batches,
        live: Live,
        *,
        deadline: float,
        clock: Callable[[], float] = time.time,
        api: Api = "responses",
        limits: BatchLimits | None = None,
        ledger: Ledger | None = None,
        most_poll: float = 60.0,
        latency: float = DEFAULT_LATENCY,
        note: Note | None = None,
    ) -> None:
        self.live = live
        self.deadline = deadline  # on ``clock`` (the wall clock: a resume keeps the same one)
        self.clock = clock
        self.api: Api = api
        self.limits = limits or BatchLimits()
        self.ledger: Ledger = ledger or NoLedger()
        self.most_poll = most_poll
        self.latency_guess = latency
        self.note = note or (lambda line: None)
        self.batches = batches
        self.jobs = Jobs(batches, self.ledger, api, self, live)
        self.paths: Counter[str] = Counter()
        """Lines settled by each path: ``batch``, ``live`` (and ``none`` for those neither
        answered, the deadline's cut included)."""
        self.twice = 0
        """Lines both paths answered: a batch answer that came for a line already sent live."""
        self.switch: Switch | None = None
        self.forecast: Forecast | None = None
        self._reset()

    def _reset(self) -> None:
        self.planner = Planner(0.0, 0, most=self.most_poll)
        self._state: dict[int, str] = {}
        self._tickets: dict[int, Ticket] = {}
        self._queue: deque[int] = deque()
        self._jobs: dict[int, Job] = {}  # by ledger row (or its position without a ledger)
        self._counts: dict[str, int] = {}  # batch id -> lines completed, as last reported
        self._changed = asyncio.Event()
        self._seen_latency: list[float] = []
        self._tokens = 1000.0
        self._next_at = 0.0
        self._done: dict[str, int] = {}  # batch id -> lines finished (completed or failed)
        self._run: Run | None = None
        self._collecting: set[asyncio.Task[None]] = set()

    # what the engine asks

    def carried(self) -> Set[tuple[int, str]]:
        return {pair for job in self.ledger.open_jobs() for pair in job.calls}

    def waits(self) -> Iterator[float]:
        """The polls of every batch follow the planner: closer as the switch nears."""
        while True:
            yield self._next_wait()

    async def send(self, tickets: Iterable[Ticket], run: Run) -> None:
        self._reset()
        watched = self._run = _Watched(run, self)
        self._tickets = {ticket.index: ticket for ticket in tickets}
        if not self._tickets:
            return
        deadline = run.now() + (self.deadline - self.clock())
        self.planner = Planner(deadline, len(self._tickets), most=self.most_poll)
        self._tokens = sum(request_tokens(t.request) for t in self._tickets.values()) / len(
            self._tickets
        )
        mine = {(t.index, t.call.key) for t in self._tickets.values()}
        adopted = [job for job in self.ledger.open_jobs() if mine.intersection(job.calls)]
        carried = {pair for job in adopted for pair in job.calls}
        fresh = [t for t in self._tickets.values() if (t.index, t.call.key) not in carried]
        estimate = self._live()
        self.forecast = forecast(
            len(self._tickets), deadline - run.now(), estimate, **_prior(self.ledger, mine)
        )
        for line in self.forecast.lines():
            self.note(f"fanwise: auto: {line}")
        now_decision = self.planner.decide(run.now(), len(self._tickets), estimate)
        all_live = not self.forecast.feasible or now_decision.switch
        async with asyncio.TaskGroup() as group:
            for job in adopted:
                self._hold(job, watched)
                self._collect_task(group, job, watched)
            if all_live:
                for ticket in fresh:  # no batch at all: in input order
                    self._state[ticket.index] = "queued"
                    ticket.via = "live"
                    self._queue.append(ticket.index)
            else:
                await self._submit(fresh, watched, group)
            if all_live:
                short = "the deadline is too short even for all-live"
                if self.forecast.deadline <= 0:
                    short = "the deadline has passed"
                await self._switch(
                    watched, now_decision.reason if self.forecast.feasible else short
                )
            else:
                group.create_task(self._watch(watched))
            group.create_task(self._live_loop(watched))

    # the batch side

    async def _submit(self, tickets: list[Ticket], run: Run, group: asyncio.TaskGroup) -> None:
        lines = (
            (t.index, t.call.key, request_line(t.index, t.call.key, t.request, self.api))
            for t in tickets
        )
        for item in pack(lines, self.limits):
            if isinstance(item, Oversized):  # too big for a batch file: it can still go live
                self._to_live(self._tickets[item.index])
                continue
            now = run.now()
            for index, _ in item.calls:
                self._begin_batch(self._tickets[index], now, run)
            made = await self.jobs.submit(item)
            if isinstance(made, CallError):  # no batch for these lines: the deadline first
                self.note(f"fanwise: auto: a batch could not be made ({made}): its lines go live")
                for index, _ in item.calls:
                    ticket = self._tickets[index]
                    ticket.end(run.now(), made)
                    self._to_live(ticket)
                continue
            self._jobs[made.row if made.row else len(self._jobs) + 1] = made
            self._collect_task(group, made, run)

    def _to_live(self, ticket: Ticket) -> None:
        self._state[ticket.index] = "queued"
        self._queue.append(ticket.index)
        self._wake()

    def _hold(self, job: Job, run: Run) -> None:
        """An adopted job's lines are the batch's again, each attempt starting now."""
        self._jobs[job.row] = job
        now = run.now()
        for index, key in job.calls:
            ticket = self._tickets.get(index)
            if ticket is not None and ticket.call.key == key:
                self._begin_batch(ticket, now, run)

    def _begin_batch(self, ticket: Ticket, now: float, run: Run) -> None:
        ticket.via = "batch"
        self._state[ticket.index] = "batch"
        number = ticket.begin(now)
        call = ticket.call
        run.emit(CallStarted(ticket.index, call.key, call.label, number, now, call.request))

    def _collect_task(self, group: asyncio.TaskGroup, job: Job, run: Run) -> None:
        task = group.create_task(self._collect(job, run))
        self._collecting.add(task)
        task.add_done_callback(self._collecting.discard)

    async def _collect(self, job: Job, run: Run) -> None:
        try:
            results, done = await self.jobs.collect(job, run)
        except asyncio.CancelledError:
            if self._finished():  # every line answered: the rest of this batch is not needed
                self.ledger.closed(job, "cancelled")
            raise
        for index, key in job.calls:
            ticket = self._tickets.get(index)
            result = results.get(index)
            if ticket is not None and ticket.call.key == key and result is not None:
                self._batch_result(ticket, result, run)
        if done:
            self.ledger.closed(job, "collected")
        self._counts.pop(job.batch_id or "", None)  # its lines are settled or queued now
        self._jobs = {row: j for row, j in self._jobs.items() if j is not job}
        self._wake()

    def _batch_result(self, ticket: Ticket, result: Result, run: Run) -> None:
        """One line's batch result: kept unless the line went live already."""
        state = self._state.get(ticket.index)
        if state == "live":
            self.twice += isinstance(result, Completion)
            return
        if state not in ("batch", "queued"):
            return
        result = checked(result, ticket.call.schema, attempts_usage(ticket.attempts))
        if ticket.current is not None:
            ticket.end(run.now(), None if isinstance(result, Completion) else result)
        if isinstance(result, Completion):
            self._settle(ticket, ticket.outcome(result, run.now()), run)
            return
        if not (is_retryable(result) or isinstance(result, Cancelled)):
            self._settle(ticket, ticket.outcome(result, run.now()), run)
            return
        ticket.repaired = next_request(ticket.request, result, repair=self.live.repair)
        if state == "batch":  # failed, expired, cancelled: live now
            self._state[ticket.index] = "queued"
            self._queue.append(ticket.index)
        self._wake()

    async def _watch(self, run: Run) -> None:
        """Look at the estimates until the batch is done: switch when it is due, and then
        release the lines held back for the cancelled batch's results if those come too late."""
        while "batch" in self._state.values():
            live = self._live()
            if self.switch is None:
                decision = self.planner.decide(run.now(), self._remaining(), live)
                if decision.switch:
                    await self._switch(run, decision.reason)
                    continue
                at = decision.at
            else:  # the last resort: no margin but a little
                left = sum(state != "done" for state in self._state.values())
                at = self.planner.deadline - LAST_RESORT - live.seconds(left)
                if run.now() >= at:
                    self._release(run)
                    break
            self._next_at = at
            self._changed.clear()
            wait = self.planner.wait(run.now(), at)
            with contextlib.suppress(TimeoutError):  # not wait_for: 3.11's can hold a cancel
                async with asyncio.timeout(wait):
                    await self._changed.wait()
        # Nothing held back: a cancelled batch's late results can still spare a queued line
        # its live call, so it is looked at, less often, until every line is answered.
        self._next_at = self.planner.deadline

    def _release(self, run: Run) -> None:
        """The deadline before the price: lines held back go live without their batch's
        results (one the batch did complete is then paid twice, and counted)."""
        held = sorted((i for i, s in self._state.items() if s == "batch"), reverse=True)
        self.note(
            f"fanwise: auto: the cancelled batch has not returned its results in time: "
            f"{len(held)} held-back lines go live"
        )
        for index in held:
            self._state[index] = "queued"
            self._queue.append(index)
        self._wake()

    def _remaining(self) -> int:
        """Lines without an answer read back. Those a batch reports completed count too: a
        cancelled batch may be slow to return its results, and the deadline must hold even
        then (its lines are held back until the last resort, ``_watch``)."""
        return sum(state != "done" for state in self._state.values())

    async def _switch(self, run: Run, reason: str) -> None:
        """Cancel every batch; queue its lines for live calls, holding back as many as it
        reported completed (the first ones) until its results say which."""
        self.switch = Switch(self.clock(), reason)
        self.note(f"fanwise: auto: switching to live: {reason}")
        moving: list[int] = []
        for job in list(self._jobs.values()):
            held = sorted(index for index, _ in job.calls if self._state.get(index) == "batch")
            completed = self._counts.get(job.batch_id or "", 0)
            moving += held[completed:]
        for index in sorted(moving, reverse=True):
            self._state[index] = "queued"
            self._queue.append(index)
        self._wake()
        for job in list(self._jobs.values()):
            if job.batch_id is not None:
                try:
                    await self.batches.cancel(job.batch_id)
                except CallError as exc:  # already over (409), or gone: its results still come
                    self.note(f"fanwise: auto: cancelling {job.batch_id}: {exc}")

    # the live side

    async def _live_loop(self, run: Run) -> None:
        slots = asyncio.Semaphore(self.live.concurrency)
        async with asyncio.TaskGroup() as group:
            while True:
                await slots.acquire()
                ticket = await self._next_live()
                if ticket is None:
                    break
                group.create_task(self._one_live(ticket, run, slots))

    async def _next_live(self) -> Ticket | None:
        while True:
            while self._queue:
                index = self._queue.popleft()
                if self._state.get(index) == "queued":
                    self._state[index] = "live"
                    return self._tickets[index]
            if "batch" not in self._state.values():
                return None
            self._changed.clear()
            await self._changed.wait()

    async def _one_live(self, ticket: Ticket, run: Run, slots: asyncio.Semaphore) -> None:
        try:
            if ticket.current is not None:  # its batch attempt ends here: cancelled for live
                ticket.end(run.now(), Cancelled("sent live: the batch was too slow for the "
                                                "deadline", code="batch_cancelled"))  # fmt: skip
            ticket.via = "live"
            blocked = await run.cleared(ticket)  # the journal committed what came before
            if blocked is not None:
                outcome = ticket.outcome(blocked, run.now())
            else:
                outcome = await self.live.outcome(ticket, run)
        finally:
            slots.release()
        if outcome.ok:
            self._seen_latency.append(outcome.attempts[-1].service if outcome.attempts else 0.0)
        self._settle(ticket, outcome, run)

    # shared

    def _settle(self, ticket: Ticket, outcome: Any, run: Run) -> None:
        self._state[ticket.index] = "done"
        self.paths[(answered_via(outcome) or "journal") if outcome.ok else "none"] += 1
        run.settled(ticket, outcome)
        self._wake()
        if self._finished():  # a cancelled batch still finalizing: no line waits for it
            for task in list(self._collecting):
                task.cancel()

    def _finished(self) -> bool:
        return all(state == "done" for state in self._state.values())

    def _wake(self) -> None:
        self._changed.set()

    def _live(self) -> LiveEstimate:
        seen = self._seen_latency
        return live_estimate(
            self.live.limiter,
            self.live.concurrency,
            latency=sum(seen) / len(seen) if seen else None,
            tokens_per_call=self._tokens,
            default_latency=self.latency_guess,
        )

    def _next_wait(self) -> float:
        """Before the switch, looks closer as it nears; after it, closer as the moment nears
        when the held-back lines go live without the cancelled batch's results (OpenAI's
        cancelling can take minutes: a 12 h run does not ask every 0.25 s)."""
        if self._run is None:
            return POLL_FLOOR
        return self.planner.wait(self._run.now(), self._next_at)

    def progress(self, event: BatchProgress) -> None:
        """A batch's counts: the planner's evidence of its pace."""
        self._counts[event.batch_id] = event.completed
        self._done[event.batch_id] = event.completed + event.failed
        self.planner.watch.saw(event.at, sum(self._done.values()))
        self._wake()

    def summary(self) -> dict[str, Any]:
        """Lines by path, the switch and its reason, lines answered twice."""
        return {
            "lines": dict(self.paths),
            "twice": self.twice,
            "deadline": self.deadline,
            "switched_at": None if self.switch is None else self.switch.at,
            "switch_reason": None if self.switch is None else self.switch.reason,
        }


def _prior(ledger: Ledger, calls: Set[tuple[int, str]]) -> dict[str, Any]:
    """The batch's expected duration from the pace of earlier batches in the journal, if the
    ledger knows any (``JournalLedger.pace``)."""
    known = getattr(ledger, "pace", lambda: None)()
    if known is None:
        return {}
    rate, batches = known
    return {
        "batch_seconds": len(calls) / rate,
        "basis": f"at the pace of the journal's last {batches} batches, {rate:.3g} lines/s",
    }


class _Watched:
    """The run, with every batch's progress shown to ``Auto`` on its way to the observers."""

    def __init__(self, run: Run, auto: Auto) -> None:
        self.run = run
        self.auto = auto
        self.warm = run.warm  # a batch needs no warming; the live calls after it go as one

    def now(self) -> float:
        return self.run.now()

    def emit(self, event: Event) -> None:
        if isinstance(event, BatchProgress):
            self.auto.progress(event)
        self.run.emit(event)

    def settled(self, ticket: Ticket, outcome: Any) -> None:
        self.run.settled(ticket, outcome)

    async def cleared(self, ticket: Ticket) -> Exception | None:
        return await self.run.cleared(ticket)


__all__ = ["Auto", "Switch"]
