"""``--engine batch``: fan-outs sent through OpenAI's Batch API, collected into the journal."""

from fanwise.batchapi.client import BatchClient, BatchState
from fanwise.batchapi.engine import BatchEngine, Polling, RetryWith
from fanwise.batchapi.files import BatchLimits
from fanwise.batchapi.ledger import Job, JournalLedger, Ledger, NoLedger

__all__ = [
    "BatchClient",
    "BatchEngine",
    "BatchLimits",
    "BatchState",
    "Job",
    "JournalLedger",
    "Ledger",
    "NoLedger",
    "Polling",
    "RetryWith",
]
