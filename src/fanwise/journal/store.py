"""The engine's ``Store`` on the journal: outcomes written as they settle, and found again.

Resume reuses the fulfilled calls of the same run; ``cache`` reuses a fulfilled call with the
same key (same model, settings and prompt) from any run against the same endpoint. A reused or
cached answer costs nothing and causes no request.

Before a call's request goes out, the store marks it sent (``intend``) and the engine waits for
the commit of everything queued so far (``committed``). A journal that cannot be written (a full
disk) fails the run closed by default (``on_error="stop"``): from the first failed write, no
new request is sent (``committed`` and ``failure`` give the engine the reason), the calls in
flight finish, and their answers still reach the caller. ``on_error="continue"`` sends on, with
the lost rows counted (``unrecorded``): their answers go on, but a resume would ask them again.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping
from typing import Literal

from fanwise.calls import SettledRecord
from fanwise.costs import call_cost
from fanwise.engine import Call, CallOutcome
from fanwise.journal.db import Journal
from fanwise.limits import estimate_tokens
from fanwise.models.base import Completion, Usage
from fanwise.outcome import Cancelled, Fulfilled
from fanwise.prices import Price, PriceTable

OnError = Literal["stop", "continue"]
ON_ERROR: tuple[OnError, ...] = ("stop", "continue")
ESTIMATED_OUTPUT = 1000
"""Output tokens a sent call is assumed to cost when it sets no ``max_output_tokens``."""


class JournalFailed(Cancelled):
    """A call not sent because the journal could not record the run (a full disk...)."""


class CostStore:
    """Keeps no outcome, only what the calls cost: the store of a run without a journal
    (``--no-journal``), so ``--max-cost`` and the summary's cost still work."""

    def __init__(self, *, prices: PriceTable) -> None:
        self.prices = prices
        self.spent = 0.0
        self.unpriced = 0
        self.unpriced_models: set[str] = set()  # the models of those calls, as asked for
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

    def cost_of(self, call: Call, outcome: CallOutcome) -> float | None:
        """The call's cost at this store's prices: what an engine prices each settled call
        with (once, into its ``SettledRecord``)."""
        return call_cost(self.prices, call, outcome)

    def record(self, settled: SettledRecord) -> None:
        self.count(settled)

    def settle(self, index: int, call: Call, outcome: CallOutcome) -> None:
        """Record an outcome priced here, as an engine would (a store used on its own)."""
        self.record(SettledRecord(index, call, outcome, self.cost_of(call, outcome)))

    def count(self, settled: SettledRecord) -> float | None:
        """Add the call's cost to ``spent``, the run's one running total (or count it
        ``unpriced``); return it."""
        cost = settled.cost
        if cost is None:
            self.unpriced += 1
            self.unpriced_models.add(settled.call.request.model)
        else:
            self.spent += cost
        return cost

    def charge(self, amount: float) -> None:
        """A cost of the run that is no call's (an explicit context cache's storage)."""
        self.spent += amount


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
        on_error: OnError = "stop",
    ) -> None:
        super().__init__(prices=prices)
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.on_error = on_error
        self.lines = lines
        self.journal = journal
        self.run_id = run_id
        self.endpoint = endpoint
        self.resume = resume
        self.cache = cache
        self._own_hits: Counter[str] = Counter()  # calls already in this run: not written twice
        self._prices: dict[str, Price | None] = {}  # model -> price, for the estimates
        self._offline = endpoint.startswith("offline/")

    def lookup(self, call: Call) -> Fulfilled[Completion] | None:
        if self.resume:
            hit = self.journal.fulfilled_in_run(self.run_id, call.key)
            if hit is not None:
                self._own_hits[call.key] += 1
                return hit
        if self.cache:
            return self.journal.fulfilled_anywhere(call.key, self.endpoint)
        return None

    def intend(self, index: int, call: Call) -> None:
        """Mark ``call`` as sent, with what it may cost, before its request goes out."""
        try:
            self.journal.record_sent(self.run_id, index, call.key, self.estimate(call))
        except sqlite3.Error as exc:  # no event loop: written at once, and it failed
            self.insert_error = self.insert_error or exc

    def withdraw(self, index: int) -> None:
        """Take back the sent mark of a call that was never sent after all (the run halted)."""
        self.journal.withdraw_sent(self.run_id, index)

    def estimate(self, call: Call) -> float | None:
        """At most what ``call`` may cost: its prompt at 4 characters a token, and its output
        limit (or ``ESTIMATED_OUTPUT`` tokens); None when its model has no price."""
        request = call.request
        model = "offline" if self._offline else request.model
        if model not in self._prices:
            self._prices[model] = self.prices.price(model)
        price = self._prices[model]
        if price is None:
            return None
        prompt = estimate_tokens((request.instructions or "") + request.prompt)
        output = request.max_output_tokens or ESTIMATED_OUTPUT
        return price.cost(Usage(input_tokens=prompt, output_tokens=output))

    async def committed(self) -> Exception | None:
        """Wait until everything recorded so far is committed; the reason to send no more
        (the journal failed, and ``on_error`` is ``stop``), or None."""
        try:
            error = await self.journal.committed()
        except sqlite3.Error as exc:  # the writer thread could not even open the journal
            self.insert_error = error = self.insert_error or exc
        return None if error is None else self.failure

    @property
    def failure(self) -> Exception | None:
        """Why no call may be sent any more: the journal's first failed write, when failing
        closed; None otherwise."""
        error = self.write_error
        if error is None or self.on_error != "stop":
            return None
        return JournalFailed(f"not sent: the journal could not record the run ({error})")

    def record(self, settled: SettledRecord) -> None:
        index, call, outcome = settled.index, settled.call, settled.outcome
        if self._own_hits[call.key]:
            self._own_hits[call.key] -= 1
            if not self._own_hits[call.key]:
                del self._own_hits[call.key]
            if isinstance(outcome, Fulfilled) and outcome.cached:
                self.reused += 1  # its row is already in this run
                return
        cost = self.count(settled)
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


__all__ = ["ON_ERROR", "CostStore", "JournalFailed", "JournalStore", "OnError", "call_cost"]
