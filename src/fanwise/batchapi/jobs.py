"""One batch job's life: its file uploaded and made a batch, polled to its end, read back.

Every step is journaled in the ledger the moment it happens, and retried on retryable errors as
the live dispatch's retry policy says; a step that still fails gives its error to every call of
the job, and the job stays open in the ledger for a later resume.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from fanwise.batchapi.client import Batches, BatchState
from fanwise.batchapi.files import Api, Chunk
from fanwise.batchapi.ledger import Job, Ledger
from fanwise.batchapi.results import Result, read_files
from fanwise.dispatch import Live, Run
from fanwise.events import BatchProgress
from fanwise.models.base import Endpoint
from fanwise.outcome import BadRequest, CallError, InvalidResponse, RateLimited

T = TypeVar("T")
_METADATA = {"created_by": "fanwise"}


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


class Paced(Protocol):
    """The waits between two looks at a batch: ``Polling``, or an auto run's, set by its
    deadline (``dispatch/auto.py``)."""

    def waits(self) -> Iterator[float]: ...


class Jobs:
    """Makes, follows and reads back batch jobs, journaling each step in ``ledger``."""

    def __init__(
        self, batches: Batches, ledger: Ledger, api: Api, polling: Paced, live: Live
    ) -> None:
        self.batches = batches
        self.ledger = ledger
        self.api: Api = api
        self.polling = polling
        self.live = live  # whose retry policy and sleep each step uses

    async def submit(self, chunk: Chunk) -> Job | CallError:
        """Upload one file and make it a batch, each step retried as a call would be."""
        first, last = chunk.calls[0][0], chunk.calls[-1][0]
        file_id = await self._retried(
            lambda: self.batches.upload(f"fanwise-{first}-{last}.jsonl", chunk.data)
        )
        if isinstance(file_id, CallError):
            return file_id
        job = self.ledger.uploaded(file_id, chunk.url, chunk.calls)
        batch = await self._retried(lambda: self.batches.create(file_id, job.endpoint, _METADATA))
        if isinstance(batch, CallError):
            self.ledger.closed(job, "abandoned")
            return batch
        return self.ledger.submitted(job, batch.id)

    async def collect(self, job: Job, run: Run) -> tuple[dict[int, Result], bool]:
        """Every call's result from one job, polled to its end; and whether it is finished.

        A job that cannot be followed (a refused poll) gives every call that error and stays
        open in the ledger, for a later resume.
        """
        if job.batch_id is None:  # the process died between upload and create: find or make it
            made = await self._recover(job)
            if isinstance(made, CallError):
                return dict.fromkeys((i for i, _ in job.calls), made), False
            job = self.ledger.submitted(job, made.id)
        state = await self._poll(job, run)
        if isinstance(state, CallError):
            return dict.fromkeys((i for i, _ in job.calls), state), False
        files: list[bytes] = []
        for file_id in (state.output_file_id, state.error_file_id):
            if file_id is not None:
                data = await self._retried(partial(self.batches.download, file_id))
                if isinstance(data, CallError):
                    return dict.fromkeys((i for i, _ in job.calls), data), False
                files.append(data)
        results = read_files(files, job.calls, Endpoint.from_url(job.endpoint) or self.api)
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

    async def _poll(self, job: Job, run: Run) -> BatchState | CallError:
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
                progress = (state.status, state.completed, state.failed)
                if progress != seen:
                    seen = progress
                    self.ledger.seen(job, state.status)
                    run.emit(BatchProgress(batch_id, *progress, state.total, run.now()))
                if state.final:
                    return state
            await self.live.sleep(wait)
        raise AssertionError("unreachable: polling waits never end")  # pragma: no cover

    async def _retried(self, step: Callable[[], Awaitable[T]]) -> T | CallError:
        """One API step, retried on retryable errors as the retry policy says."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await step()
            except CallError as exc:
                wait = self.live.retry.delay(attempt, exc, self.live.rng)
                if wait is None:
                    return exc
                await self.live.sleep(wait)


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


__all__ = ["Jobs", "Paced", "Polling"]
