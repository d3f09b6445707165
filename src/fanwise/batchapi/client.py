"""The Files and Batches endpoints through the official SDK, as fanwise's own values and errors.

Every SDK or transport failure leaves as a classified ``CallError`` (the same taxonomy as a live
call), so the engine retries an upload or a poll exactly as it would retry a call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import httpx2
import openai
from openai import AsyncOpenAI

from fanwise.models.openai import classify_error

T = TypeVar("T")
FINAL = frozenset({"completed", "failed", "expired", "cancelled"})
FIND_LIMIT = 100
"""How many of the newest batches are searched for one made from a given file (crash recovery)."""


@dataclass(frozen=True, slots=True)
class BatchState:
    """A batch as last seen: its status, counts and result files."""

    id: str
    status: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    input_file_id: str = ""
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: tuple[str, ...] = ()
    error_codes: tuple[str, ...] = ()

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @classmethod
    def of(cls, batch: Any) -> BatchState:
        counts = batch.request_counts
        errors = batch.errors.data if batch.errors is not None and batch.errors.data else []
        return cls(
            id=batch.id,
            status=batch.status,
            total=counts.total if counts else 0,
            completed=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            input_file_id=batch.input_file_id,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            errors=tuple(f"line {e.line}: {e.code}: {e.message}" for e in errors),
            error_codes=tuple(str(e.code) for e in errors if e.code),
        )


class Batches(Protocol):
    """What the batch dispatch asks of a batch API: OpenAI's (``BatchClient``) or Anthropic's
    Message Batches (``batchapi/anthropic.py``)."""

    async def upload(self, filename: str, data: bytes) -> str: ...

    async def create(
        self, input_file_id: str, endpoint: str, metadata: Mapping[str, str] | None = None
    ) -> BatchState: ...

    async def retrieve(self, batch_id: str) -> BatchState: ...

    async def cancel(self, batch_id: str) -> BatchState: ...

    async def download(self, file_id: str) -> bytes: ...

    async def find(self, input_file_id: str) -> BatchState | None: ...


class BatchClient:
    """Upload, create, poll, download and cancel, on one ``AsyncOpenAI`` client."""

    def __init__(self, client: AsyncOpenAI) -> None:
        self.client = client

    async def upload(self, filename: str, data: bytes) -> str:
        """Upload an input file (``purpose="batch"``); its id."""
        uploaded = await _call(self.client.files.create(file=(filename, data), purpose="batch"))
        return uploaded.id

    async def create(
        self, input_file_id: str, endpoint: str, metadata: Mapping[str, str] | None = None
    ) -> BatchState:
        batch = await _call(
            self.client.batches.create(
                input_file_id=input_file_id,
                endpoint=cast(Any, endpoint),
                completion_window="24h",
                metadata=dict(metadata) if metadata else None,
            )
        )
        return BatchState.of(batch)

    async def retrieve(self, batch_id: str) -> BatchState:
        return BatchState.of(await _call(self.client.batches.retrieve(batch_id)))

    async def cancel(self, batch_id: str) -> BatchState:
        return BatchState.of(await _call(self.client.batches.cancel(batch_id)))

    async def download(self, file_id: str) -> bytes:
        content = await _call(self.client.files.content(file_id))
        return content.content

    async def find(self, input_file_id: str) -> BatchState | None:
        """The batch made from ``input_file_id``, among the newest ``FIND_LIMIT``, if any.

        After a crash between creating a batch and writing its id down, this finds it again
        instead of paying for a second one.
        """
        page = await _call(self.client.batches.list(limit=FIND_LIMIT))
        for batch in page.data:
            if batch.input_file_id == input_file_id:
                return BatchState.of(batch)
        return None


async def _call(pending: Awaitable[T]) -> T:
    try:
        return await pending
    except (openai.OpenAIError, httpx2.HTTPError) as exc:
        raise classify_error(exc) from exc


__all__ = ["FINAL", "BatchClient", "BatchState", "Batches"]
