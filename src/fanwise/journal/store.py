"""The engine's ``Store`` on the journal: outcomes written as they settle, and found again.

Resume reuses the fulfilled calls of the same run; ``cache`` reuses a fulfilled call with the
same key (same model, settings and prompt) from any run against the same endpoint. A reused or
cached answer costs nothing and causes no request.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping

from fanwise.dispatch.base import BATCH_DISCOUNT, answered_via
from fanwise.engine import Call, CallOutcome
from fanwise.journal.db import Journal
from fanwise.models.base import Completion
from fanwise.outcome import Fulfilled
from fanwise.prices import PriceTable
from fanwise.structured import outcome_usage


class CostStore:
    """Keeps no outcome, only what the calls cost: the store of a run without a journal
    (``--no-journal``), so ``--max-cost`` and the summary's cost still work."""

    def __init__(self, *, prices: PriceTable) -> None:
        self.prices = prices
        self.spent = 0.0
        self.unpriced = 0
        self.reused = 0
        self.failed_inserts = 0
        self.insert_error: sqlite3.Error | None = None

    @property
    def unrecorded(self) -> int:
        """Settled calls the journal failed to write (see ``write_error``)."""
        return self.failed_inserts

    @property
    def write_error(self) -> sqlite3.Error | None:
        return self.insert_error

    def lookup(self, call: Call) -> Fulfilled[Completion] | None:
        return None

    def record(self, index: int, call: Call, outcome: CallOutcome) -> None:
        self.count(call, outcome)

    def count(self, call: Call, outcome: CallOutcome) -> float | None:
        """Add the call's cost to ``spent`` (or to ``unpriced``); return it."""
        cost = call_cost(self.prices, call, outcome)
        if cost is None:
            self.unpriced += 1
        else:
            self.spent += cost
        return cost


class JournalStore(CostStore):
    """Records one run's calls; ``resume`` and ``cache`` decide what may be answered from it.

    ``lines`` (a batch's: the engine index of each call in flight to its input line, kept by
    ``run_batch``) puts each call's input line in its row.
    """

    def __init__(
        self,
        journal: Journal,
        run_id: int,
        *,
        prices: PriceTable,
        endpoint: str,
        resume: bool = False,
        cache: bool = False,
        lines: Mapping[int, int] | None = None,
    ) -> None:
        super().__init__(prices=prices)
        self.lines = lines
        self.journal = journal
        self.run_id = run_id
        self.endpoint = endpoint
        self.resume = resume
        self.cache = cache
        self._own_hits: Counter[str] = Counter()  # calls already in this run: not written twice

    def lookup(self, call: Call) -> Fulfilled[Completion] | None:
        if self.resume:
            hit = self.journal.fulfilled_in_run(self.run_id, call.key)
            if hit is not None:
                self._own_hits[call.key] += 1
                return hit
        if self.cache:
            return self.journal.fulfilled_anywhere(call.key, self.endpoint)
        return None

    def record(self, index: int, call: Call, outcome: CallOutcome) -> None:
        if self._own_hits[call.key]:
            self._own_hits[call.key] -= 1
            if not self._own_hits[call.key]:
                del self._own_hits[call.key]
            if isinstance(outcome, Fulfilled) and outcome.cached:
                self.reused += 1  # its row is already in this run
                return
        cost = self.count(call, outcome)
        try:
            line = None if self.lines is None else self.lines.get(index)
            self.journal.record_call(self.run_id, index, call, outcome, cost=cost, line=line)
        except sqlite3.Error as exc:
            # The answer still reaches the caller; only resuming it later is lost. Failing the
            # whole run here would throw away every call in flight for a bookkeeping error.
            self.failed_inserts += 1
            self.insert_error = self.insert_error or exc

    @property
    def unrecorded(self) -> int:
        """Rows that failed to insert, and those lost with a failed commit (``Journal.flush``;
        counted for the whole journal, which one run's store uses alone)."""
        return self.failed_inserts + self.journal.unwritten

    @property
    def write_error(self) -> sqlite3.Error | None:
        return self.insert_error or self.journal.write_error


def call_cost(prices: PriceTable, call: Call, outcome: CallOutcome) -> float | None:
    """What a settled call cost, failed attempts included (an answer that broke its schema, a
    refusal); nothing when cached or when no attempt was answered; None if unpriced."""
    if isinstance(outcome, Fulfilled) and outcome.cached:
        return 0.0
    usage = outcome_usage(outcome)
    if usage.unknown:  # the server reported no usage: the cost is unknown, not $0
        return None
    if not usage.total_tokens:
        return 0.0
    model = (outcome.value.model if isinstance(outcome, Fulfilled) else "") or call.request.model
    cost = prices.cost(model, usage)
    if cost is not None and answered_via(outcome) == "batch":  # an auto run's batch answer
        cost *= BATCH_DISCOUNT
    return cost
