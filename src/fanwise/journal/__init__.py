"""The SQLite journal: every settled call written down at once, for resume, cache and cost."""

from fanwise.costs import call_cost
from fanwise.journal.content import NOT_KEPT, Content
from fanwise.journal.db import Journal
from fanwise.journal.records import CallRecord, RunRecord, Totals
from fanwise.journal.schema import MIGRATIONS, JournalError, migrate
from fanwise.journal.store import CostStore, JournalStore

__all__ = [
    "MIGRATIONS",
    "NOT_KEPT",
    "CallRecord",
    "Content",
    "CostStore",
    "Journal",
    "JournalError",
    "JournalStore",
    "RunRecord",
    "Totals",
    "call_cost",
    "migrate",
]
