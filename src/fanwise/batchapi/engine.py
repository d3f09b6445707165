"""``--engine batch``: the fan-out through OpenAI's Batch API, at half the price, within 24 h.

``BatchEngine`` is an ``Engine`` whose ``run`` sends the calls as batch files instead of live
requests, and settles each call as its result comes back: the same store (the journal), events
and outcomes as a live run, so everything downstream is unchanged. ``complete`` (a workflow's
synthesis) stays live. One ``run``:

1. calls already answered come from the store (resume, cache); jobs that an earlier process left
   open in the ledger are adopted, so their calls are not sent again;
2. the other calls are packed into files within ``BatchLimits``, uploaded and made batches, each
   written in the ledger the moment it exists;
3. every open batch is polled, with growing waits, until it ends; each change is a
   ``BatchProgress`` event;
4. the result files are read back onto the calls by ``custom_id``;
5. a retryable failure (an expired line, a 5xx line, a line missing from the results) is sent
   again, in a new batch or live (``retry_with``), as the retry policy and budget allow. The
   outcome carries every attempt: one per batch the call was in, then its live attempts.

A job is marked collected in the ledger only once its calls are settled or queued again, so a
crash at any point loses nothing and pays for nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, TypeVar

from fanwise.batchapi.client import BatchClient, BatchState
from fanwise.batchapi.files import URLS, Api, BatchLimits, Chunk, Oversized, pack, request_line
from fanwise.batchapi.ledger import Job, Ledger, NoLedger
from fanwise.batchapi.results import Result, read_files
from fanwise.engine import Call, CallOutcome, Engine
from fanwise.events import (
    BatchProgress,
    CallRetrying,
    CallSettled,
    CallStarted,
    Event,
    Observer,
)
from fanwise.models.base import Completion, Model
from fanwise.outcome import (
    Attempt,
    BadRequest,
    CallError,
    CallTimeout,
    Fulfilled,
    InvalidResponse,
    RateLimited,
    Rejected,
    error_to_dict,
)

T = TypeVar("T")
RetryWith = Literal["batch", "live"]
OnOutcome = Callable[[int, Call, CallOutcome], None]


@dataclass(frozen=True, slots=True)
class Polling:
    """Waits between two looks at a batch: ``first``, growing by ``factor`` up to ``most``."""

    first: float = 1.0
    factor: float = 1.5
    most: float = 60.0

    def __post_init__(self) -> None:
        if not (0 < self.first <= self.most and self.factor >= 1):
            raise ValueError(
                f"polling needs 0 < first <= most and factor >= 1, got first={self.first}, "
                f"most={self.most}, factor={self.factor}"
            )

    def waits(self) -> Iterator[float]:
        wait = self.first
        while True:
            yield wait
            wait = min(self.most, wait * self.factor)


@dataclass(slots=True)
class _State:
    """One call of the run, until it settles."""

    index: int
    call: Call
    attempts: list[Attempt] = field(default_factory=list)
    first_start: float | None = None


@dataclass(slots=True)
class _Run:
    """One ``run``: the calls still open, and where settled outcomes go."""

    on_outcome: OnOutcome | None
    keep: bool
    pending: dict[int, _State] = field(default_factory=dict)
    results: dict[int, CallOutcome] = field(default_factory=dict)


@dataclass(slots=True)
class _Round:
    """What one batch round brought back: each call's result, and the jobs it finished."""

    results: dict[int, Result] = field(default_factory=dict)
    finished: list[Job] = field(default_factory=list)


class BatchEngine(Engine):
    """An ``Engine`` whose ``run`` goes through the Batch API; ``complete`` stays live."""

    def __init__(
        self,
        model: Model,
        *,
        batches: BatchClient,
        api: Api = "responses",
        limits: BatchLimits | None = None,
        polling: Polling | None = None,
        ledger: Ledger | None = None,
        retry_with: RetryWith = "batch",
        **options: Any,
    ) -> None:
        super().__init__(model, **options)
        if retry_with not in ("batch", "live"):
            raise ValueError(f"retry_with must be 'batch' or 'live', got {retry_with!r}")
        self.batches = batches
        self.api: Api = api
        self.limits = limits or BatchLimits()
        self.polling = polling or Polling()
        self.ledger: Ledger = ledger or NoLedger()
        self.retry_with: RetryWith = retry_with

    async def run(
        self,
        calls: Iterable[Call],
        *,
        deadline: float | None = None,
        fail_fast: bool = False,
        on_outcome: OnOutcome | None = None,
        keep: bool = True,
    ) -> list[CallOutcome]:
        """Run every call through batches; outcomes come back in input order, as ``Engine.run``.

        ``deadline`` settles the calls still waiting as timeouts but leaves their batches
        running, and in the ledger for a resume to collect. ``fail_fast`` is refused: a batch
        cannot stop at its first failure.
        """
        if fail_fast:
            raise ValueError("the Batch API cannot stop at the first failure: use mode settled")
        run = _Run(on_outcome, keep)
        adopted = self.ledger.open_jobs()
        carried = {pair for job in adopted for pair in job.calls}
        fresh: list[int] = []
        for index, call in enumerate(calls):
            state = _State(index, call)
            cached = self.store.lookup(call) if self.store is not None else None
            if cached is not None:
                self._record(run, state, Fulfilled(cached.value, 0.0, self.now(), (), cached=True))
                continue
            run.pending[index] = state
            if (index, call.key) in carried:
                continue
            try:
                if self.admit is not None:
                    self.admit(call)
            except Exception as exc:
                self._settle_with(run, state, exc)
                continue
            fresh.append(index)
        scope = asyncio.timeout(deadline)
        try:
            async with scope:
                await self._rounds(run, fresh, adopted)
        except TimeoutError:
            if not scope.expired():
                raise
            message = (
                f"the deadline ({deadline:g}s) passed before its batch ended; the batch keeps "
                "running, and a resume of this run collects it"
            )
            for state in list(run.pending.values()):
                self._settle_with(run, state, CallTimeout(message))
        return [run.results[i] for i in sorted(run.results)]

    async def _rounds(self, run: _Run, fresh: list[int], adopted: list[Job]) -> None:
        """Batch rounds until nothing is left to send again (retries may go live instead)."""
        to_send, jobs = fresh, adopted
        while to_send or jobs:
            outcome = await self._round(run, to_send, jobs)
            retry: list[int] = []
            for index, result in outcome.results.items():
                state = run.pending.get(index)
                if state is None:
                    continue
                if isinstance(result, Completion) or not self._again(state, result):
                    self._settle_with(run, state, result)
                else:
                    retry.append(index)
            for job in outcome.finished:
                self.ledger.closed(job, "collected")
            if self.retry_with == "live" and retry:
                await self._live(run, retry)
                return
            to_send, jobs = retry, []

    def _again(self, state: _State, error: CallError) -> bool:
        """Whether a failed call goes out again: the retry policy and budget decide."""
        number = len(state.attempts)
        if self.retry.delay(number, error, self.rng) is None or not self.retry_budget.try_spend():
            return False
        call = state.call
        self.emit(
            CallRetrying(
                state.index, call.key, call.label, number, error_to_dict(error), 0.0, self.now()
            )
        )
        return True

    async def _round(self, run: _Run, indices: list[int], jobs: list[Job]) -> _Round:
        """Send ``indices`` as new batches, then collect them and ``jobs``."""
        found = _Round()

        async def collect(job: Job, started: float) -> None:
            results, finished = await self._collect(job)
            ended = self.now()
            for index, key in job.calls:
                state = run.pending.get(index)
                result = results.get(index)
                if state is not None and state.call.key == key and result is not None:
                    state.attempts.append(_attempt(state, started, ended, result))
                    found.results[index] = result
            if finished:
                found.finished.append(job)

        def failed(indices: Iterable[int], started: float, error: CallError) -> None:
            for index in indices:
                state = run.pending[index]
                state.attempts.append(_attempt(state, started, self.now(), error))
                found.results[index] = error

        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(collect(job, self._started(run, job.calls)))
            for item in pack(self._lines(run, indices), self.limits):
                if isinstance(item, Oversized):
                    error = BadRequest(item.message, code="batch_line_too_large")
                    failed([item.index], self.now(), error)
                    continue
                started = self._started(run, item.calls)
                made = await self._submit(item)
                if isinstance(made, CallError):
                    failed((index for index, _ in item.calls), started, made)
                else:
                    group.create_task(collect(made, started))
        return found

    def _lines(self, run: _Run, indices: list[int]) -> Iterator[tuple[int, str, bytes]]:
        for index in indices:
            call = run.pending[index].call
            yield index, call.key, request_line(index, call.key, call.request, self.api)

    def _started(self, run: _Run, calls: Iterable[tuple[int, str]]) -> float:
        """Each call of a batch starts an attempt now; returns now."""
        now = self.now()
        for index, key in calls:
            state = run.pending.get(index)
            if state is None or state.call.key != key:
                continue
            if state.first_start is None:
                state.first_start = now
            call = state.call
            self.emit(CallStarted(index, call.key, call.label, len(state.attempts) + 1, now))
        return now

    async def _submit(self, chunk: Chunk) -> Job | CallError:
        """Upload one file and make it a batch, each step retried as a call would be."""
        first, last = chunk.calls[0][0], chunk.calls[-1][0]
        file_id = await self._retried(
            lambda: self.batches.upload(f"fanwise-{first}-{last}.jsonl", chunk.data)
        )
        if isinstance(file_id, CallError):
            return file_id
        job = self.ledger.uploaded(file_id, URLS[self.api], chunk.calls)
        batch = await self._retried(lambda: self.batches.create(file_id, job.endpoint, _METADATA))
        if isinstance(batch, CallError):
            self.ledger.closed(job, "abandoned")
            return batch
        return self.ledger.submitted(job, batch.id)

    async def _collect(self, job: Job) -> tuple[dict[int, Result], bool]:
        """Every call's result from one job, polled to its end; and whether it is finished.

        A job that cannot be followed (a refused poll) gives every call that error and stays
        open in the ledger, for a later resume.
        """
        if job.batch_id is None:  # the process died between upload and create: find or make it
            made = await self._recover(job)
            if isinstance(made, CallError):
                return dict.fromkeys((i for i, _ in job.calls), made), False
            job = self.ledger.submitted(job, made.id)
        state = await self._poll(job)
        if isinstance(state, CallError):
            return dict.fromkeys((i for i, _ in job.calls), state), False
        files: list[bytes] = []
        for file_id in (state.output_file_id, state.error_file_id):
            if file_id is not None:
                data = await self._retried(partial(self.batches.download, file_id))
                if isinstance(data, CallError):
                    return dict.fromkeys((i for i, _ in job.calls), data), False
                files.append(data)
        results = read_files(files, job.calls, self.api)
        for index, _ in job.calls:
            if index not in results:
                results[index] = _missing(state)
        return results, True

    async def _recover(self, job: Job) -> BatchState | CallError:
        """The batch made from the job's file before the process died, or a new one from it."""
        found = await self._retried(lambda: self.batches.find(job.input_file_id))
        if found is not None:
            return found
        return await self._retried(
            lambda: self.batches.create(job.input_file_id, job.endpoint, _METADATA)
        )

    async def _poll(self, job: Job) -> BatchState | CallError:
        """Look at the batch until it ends, waiting longer each time; report every change."""
        assert job.batch_id is not None
        batch_id = job.batch_id
        seen: tuple[str, int, int] | None = None
        for wait in self.polling.waits():
            try:
                state = await self.batches.retrieve(batch_id)
            except CallError as exc:
                if not exc.retryable:
                    return exc
            else:
                now = (state.status, state.completed, state.failed)
                if now != seen:
                    seen = now
                    self.ledger.seen(job, state.status)
                    self.emit(
                        BatchProgress(
                            batch_id,
                            state.status,
                            state.completed,
                            state.failed,
                            state.total,
                            self.now(),
                        )
                    )
                if state.final:
                    return state
            await self.sleep(wait)
        raise AssertionError("unreachable: polling waits never end")  # pragma: no cover

    async def _retried(self, step: Callable[[], Awaitable[T]]) -> T | CallError:
        """One API step, retried on retryable errors as the retry policy says."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await step()
            except CallError as exc:
                wait = self.retry.delay(attempt, exc, self.rng)
                if wait is None:
                    return exc
                await self.sleep(wait)

    async def _live(self, run: _Run, indices: list[int]) -> None:
        """Send ``indices`` again as live calls, through a plain engine on the same settings."""
        offsets = {index: len(run.pending[index].attempts) for index in indices}
        live = Engine(
            self.model,
            concurrency=self.concurrency,
            timeout=self.timeout,
            retry=self.retry,
            retry_budget=self.retry_budget,
            limiter=self.limiter,
            observer=_Renumbered(self.observer, offsets),
            clock=self.clock,
            sleep=self.sleep,
        )
        live.origin = self.origin  # one time axis for every event
        slots = asyncio.Semaphore(self.concurrency)

        async def one(state: _State) -> None:
            async with slots:
                outcome = await live.complete(state.call, index=state.index)
            offset = len(state.attempts)
            state.attempts += [replace(a, number=a.number + offset) for a in outcome.attempts]
            result = outcome.value if isinstance(outcome, Fulfilled) else outcome.error
            self._settle_with(run, state, result)

        async with asyncio.TaskGroup() as group:
            for index in indices:
                group.create_task(one(run.pending[index]))

    def _settle_with(self, run: _Run, state: _State, result: Completion | Exception) -> None:
        """The call's outcome from its last result and every attempt it made."""
        run.pending.pop(state.index, None)
        now = self.now()
        started = state.first_start if state.first_start is not None else now
        attempts = tuple(state.attempts)
        outcome: CallOutcome
        if isinstance(result, Completion):
            outcome = Fulfilled(result, now - started, started, attempts)
        else:
            outcome = Rejected(result, now - started, started, attempts)
        self._record(run, state, outcome)

    def _record(self, run: _Run, state: _State, outcome: CallOutcome) -> None:
        call = state.call
        if self.store is not None:
            self.store.record(state.index, call, outcome)
        self.emit(CallSettled(state.index, call.key, call.label, outcome, self.now()))
        if run.on_outcome is not None:
            run.on_outcome(state.index, call, outcome)
        if run.keep:
            run.results[state.index] = outcome


_METADATA = {"created_by": "fanwise"}


def _attempt(state: _State, started: float, ended: float, result: Result) -> Attempt:
    error = None if isinstance(result, Completion) else error_to_dict(result)
    return Attempt(len(state.attempts) + 1, started, ended - started, error)


def _missing(state: BatchState) -> CallError:
    if state.status == "failed":
        detail = "; ".join(state.errors[:3]) or "no detail"
        if any(code.endswith("limit_exceeded") for code in state.error_codes):
            # e.g. token_limit_exceeded: the account's enqueued tokens are full for now
            return RateLimited(f"batch {state.id} was refused: {detail}", code="batch_refused")
        return BadRequest(f"batch {state.id} failed validation: {detail}", code="batch_failed")
    return InvalidResponse(
        f"batch {state.id} ended {state.status} with no result line for this request",
        code="batch_result_missing",
    )


class _Renumbered:
    """The live retries' events, numbered after the call's batch attempts; their outcomes are
    left out, because the batch engine settles each call itself, with its whole history."""

    def __init__(self, observer: Observer | None, offsets: dict[int, int]) -> None:
        self.observer = observer
        self.offsets = offsets

    def __call__(self, event: Event) -> None:
        if self.observer is None or isinstance(event, CallSettled):
            return
        if isinstance(event, CallStarted | CallRetrying):
            event = replace(event, attempt=event.attempt + self.offsets.get(event.index, 0))
        self.observer(event)


__all__ = ["BatchEngine", "Polling", "RetryWith"]
