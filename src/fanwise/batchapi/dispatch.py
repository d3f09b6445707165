"""The Batch API dispatch: calls sent as batch files, each settled as its result comes back.

``BatchAPI.send`` is one step of ``Engine.run`` (which owns the journal, ``--max-cost``, the
deadline and the events). It goes in rounds:

1. jobs that an earlier process left open in the ledger are adopted, so their calls are not
   sent again (the engine does not admit them either: see ``carried``);
2. the other calls are packed into files within ``BatchLimits``, uploaded and made batches, each
   written in the ledger the moment it exists (``batchapi.jobs``);
3. every open batch is polled until it ends, and its result files read back onto the calls by
   ``custom_id``;
4. a retryable failure (an expired line, a 5xx line, a line missing from the results) is sent
   again, in a new batch or live (``retry_with``), as the retry policy and budget allow. The
   outcome carries every attempt: one per batch the call was in, then its live attempts.

A job is marked collected in the ledger only once its calls are settled or queued again, so a
crash at any point loses nothing and pays for nothing twice. The deadline leaves the batches
running, and in the ledger for a resume to collect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Set
from typing import Literal

from fanwise.batchapi.client import Batches
from fanwise.batchapi.files import Api, BatchLimits, Oversized, pack, request_line
from fanwise.batchapi.jobs import Jobs, Polling
from fanwise.batchapi.ledger import Job, Ledger, NoLedger
from fanwise.batchapi.results import Result
from fanwise.dispatch import Dispatch, Live, Run, Ticket
from fanwise.events import CallRetrying, CallStarted
from fanwise.models.base import Completion
from fanwise.outcome import BadRequest, CallError, error_to_dict
from fanwise.structured import attempts_usage, checked, next_request

RetryWith = Literal["batch", "live"]


class BatchAPI(Dispatch):
    """Sends calls through OpenAI's Batch API; retries (and ``retry_with="live"``) as ``live``."""

    stops_early = False  # a batch sent cannot stop at its first failure
    deadline_note = "; its batch keeps running, and a resume of this run collects it"
    marks_sent = False  # a resume collects the batch: nothing is lost with a kill

    def __init__(
        self,
        batches: Batches,
        live: Live,
        *,
        api: Api = "responses",
        limits: BatchLimits | None = None,
        polling: Polling | None = None,
        ledger: Ledger | None = None,
        retry_with: RetryWith = "batch",
    ) -> None:
        if retry_with not in ("batch", "live"):
            raise ValueError(f"retry_with must be 'batch' or 'live', got {retry_with!r}")
        self.live = live  # its retry policy, budget and sleep are the batch's too
        self.api: Api = api
        self.limits = limits or BatchLimits()
        self.ledger: Ledger = ledger or NoLedger()
        self.jobs = Jobs(batches, self.ledger, api, polling or Polling(), live)
        self.retry_with: RetryWith = retry_with

    def carried(self) -> Set[tuple[int, str]]:
        return {pair for job in self.ledger.open_jobs() for pair in job.calls}

    async def send(self, tickets: Iterable[Ticket], run: Run) -> None:
        open_ = {ticket.index: ticket for ticket in tickets}
        mine = {(ticket.index, ticket.call.key) for ticket in open_.values()}
        # Only the open jobs of these calls: a staged run sends one set of calls per stage, and
        # a later stage's batch, left running by a dead process, is collected by that stage.
        adopted = [job for job in self.ledger.open_jobs() if mine.intersection(job.calls)]
        carried = {pair for job in adopted for pair in job.calls}
        fresh = [t for t in open_.values() if (t.index, t.call.key) not in carried]
        to_send, jobs = fresh, adopted
        while to_send or jobs:
            results, finished = await self._round(run, open_, to_send, jobs)
            retry: list[Ticket] = []
            for index, result in results.items():
                ticket = open_[index]  # a round reports only on open calls
                if isinstance(result, Completion) or not self._again(run, ticket, result):
                    del open_[index]
                    run.settled(ticket, ticket.outcome(result, run.now()))
                else:
                    retry.append(ticket)
            for job in finished:
                self.ledger.closed(job, "collected")
            if self.retry_with == "live" and retry:
                await self.live.send(retry, run)
                return
            to_send, jobs = retry, []

    def _again(self, run: Run, ticket: Ticket, error: CallError) -> bool:
        """Whether a failed call goes out again: the retry policy and budget decide."""
        live, number = self.live, len(ticket.attempts)
        if live.retry.delay(number, error, live.rng) is None or not live.retry_budget.try_spend():
            return False
        call = ticket.call
        failure = error_to_dict(error)
        run.emit(CallRetrying(ticket.index, call.key, call.label, number, failure, 0.0, run.now()))
        ticket.repaired = next_request(ticket.request, error, repair=live.repair)
        return True

    async def _round(
        self, run: Run, open_: dict[int, Ticket], tickets: list[Ticket], jobs: list[Job]
    ) -> tuple[dict[int, Result], list[Job]]:
        """Send ``tickets`` as new batches, then collect them and ``jobs``: each call's result,
        and the jobs finished."""
        found: dict[int, Result] = {}
        finished: list[Job] = []

        def begun(calls: Iterable[tuple[int, str]]) -> tuple[list[Ticket], float]:
            """Each call of a batch starts an attempt now."""
            now, mine = run.now(), []
            for index, key in calls:
                ticket = open_.get(index)
                if ticket is not None and ticket.call.key == key:
                    call = ticket.call
                    number = ticket.begin(now)
                    run.emit(CallStarted(index, key, call.label, number, now, call.request))
                    mine.append(ticket)
            return mine, now

        def ended(mine: list[Ticket], started: float, results: dict[int, Result]) -> None:
            now = run.now()
            for ticket in mine:
                result = results.get(ticket.index)
                if result is not None:
                    spent = attempts_usage(ticket.attempts)  # a schema break: sent again
                    cap = ticket.call.request.max_output_tokens
                    result = checked(result, ticket.call.schema, spent, cap)
                    ticket.add(started, now, None if isinstance(result, Completion) else result)
                    found[ticket.index] = result

        async def collect(job: Job, mine: list[Ticket], started: float) -> None:
            results, done = await self.jobs.collect(job, run)
            ended(mine, started, results)
            if done:
                finished.append(job)

        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(collect(job, *begun(job.calls)))
            for item in pack(self._lines(tickets), self.limits):
                if isinstance(item, Oversized):  # refused here: never sent, so never started
                    error = BadRequest(item.message, code="batch_line_too_large")
                    ended([open_[item.index]], run.now(), {item.index: error})
                    continue
                mine, started = begun(item.calls)
                made = await self.jobs.submit(item)
                if isinstance(made, CallError):
                    ended(mine, started, dict.fromkeys((t.index for t in mine), made))
                else:
                    group.create_task(collect(made, mine, started))
        return found, finished

    def _lines(self, tickets: list[Ticket]) -> Iterator[tuple[int, str, bytes]]:
        for ticket in tickets:
            index, call = ticket.index, ticket.call
            yield index, call.key, request_line(index, call.key, ticket.request, self.api)


__all__ = ["BatchAPI", "RetryWith"]
