"""``--engine batch``: fan-outs sent through OpenAI's Batch API, collected into the journal."""

from fanwise.batchapi.client import BatchClient, BatchState
from fanwise.batchapi.dispatch import BatchAPI, RetryWith
from fanwise.batchapi.files import BatchLimits
from fanwise.batchapi.jobs import Jobs, Polling
from fanwise.batchapi.ledger import Job, JournalLedger, Ledger, NoLedger

__all__ = [
    "BatchAPI",
    "BatchClient",
    "BatchLimits",
    "BatchState",
    "Job",
    "Jobs",
    "JournalLedger",
    "Ledger",
    "NoLedger",
    "Polling",
    "RetryWith",
]
