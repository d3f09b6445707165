"""``--engine batch``: the fan-out through OpenAI's Batch API, at half the price, within 24 h.

``BatchEngine`` is an ``Engine`` whose dispatch is ``BatchAPI`` (``batchapi.dispatch``): the
same run loop, store (the journal), events and outcomes as a live run, so everything downstream
is unchanged. ``complete`` (a workflow's synthesis) stays live.
"""

from __future__ import annotations

from typing import Any

from fanwise.batchapi.client import Batches
from fanwise.batchapi.dispatch import BatchAPI, RetryWith
from fanwise.batchapi.files import Api, BatchLimits
from fanwise.batchapi.jobs import Polling
from fanwise.batchapi.ledger import Ledger
from fanwise.engine import Engine
from fanwise.models.base import Model


class BatchEngine(Engine):
    """An ``Engine`` whose ``run`` goes through the Batch API; ``complete`` stays live."""

    def __init__(
        self,
        model: Model,
        *,
        batches: Batches,
        api: Api = "responses",
        limits: BatchLimits | None = None,
        polling: Polling | None = None,
        ledger: Ledger | None = None,
        retry_with: RetryWith = "batch",
        **options: Any,
    ) -> None:
        super().__init__(model, **options)
        self.dispatch = BatchAPI(
            batches,
            self.live,
            api=api,
            limits=limits,
            polling=polling,
            ledger=ledger,
            retry_with=retry_with,
        )


__all__ = ["BatchEngine", "Polling", "RetryWith"]
