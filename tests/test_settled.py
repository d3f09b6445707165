"""One ``SettledRecord`` per call: the call priced once, and every reader reads that price."""

from __future__ import annotations

import io
import json

from fanwise import Call, Engine, Request
from fanwise.batch import run_batch
from fanwise.budget import Budget
from fanwise.calls import CallOutcome, SettledRecord
from fanwise.events import CallSettled, Event
from fanwise.journal import CostStore
from fanwise.models.settings import ModelSettings
from fanwise.prices import Price, PriceTable
from tests.scripted import ScriptedModel

PRICES = PriceTable({"m": Price(input=2.0, output=8.0)})  # dollars per 1M tokens


class CountingStore(CostStore):
    """A store that counts how often a call is priced."""

    def __init__(self) -> None:
        super().__init__(prices=PRICES)
        self.priced = 0

    def cost_of(self, call: Call, outcome: CallOutcome) -> float | None:
        self.priced += 1
        return super().cost_of(call, outcome)


async def test_each_call_is_priced_once_and_every_reader_reads_that_price() -> None:
    """The store's total, the budget, the events and on_settled all see the one record's cost."""
    store = CountingStore()
    budget = Budget(10.0, PRICES)
    events: list[Event] = []

    def observe(event: Event) -> None:
        events.append(event)
        budget(event)

    records: list[SettledRecord] = []
    engine = Engine(ScriptedModel(), store=store, admit=budget.admit, observer=observe)
    calls = [Call(Request.text(f"q{n}", "m")) for n in range(5)]
    await engine.run(calls, on_settled=records.append)
    assert store.priced == 5
    one = (10 * 2.0 + 5 * 8.0) / 1e6  # ScriptedModel's usage: 10 in, 5 out
    assert [r.cost for r in records] == [one] * 5
    settled = [e for e in events if isinstance(e, CallSettled)]
    assert [e.record for e in settled] == sorted(records, key=lambda r: r.index)
    assert store.spent == budget.spent == sum(r.cost or 0.0 for r in records)
    assert {r.model for r in records} == {"m"} and records[0].endpoint == "responses"


async def test_a_batch_output_line_says_the_records_cost() -> None:
    """run_batch writes each line's cost_usd from the engine's record: the store's figure."""
    store = CountingStore()
    engine = Engine(ScriptedModel(), store=store)
    lines = [json.dumps({"custom_id": f"r{n}", "prompt": f"q{n}", "model": "m"}) for n in range(3)]
    out = io.StringIO()

    def write(line: str) -> None:
        out.write(line + "\n")

    summary = await run_batch(lines, engine, write, defaults=ModelSettings(model="m"))
    written = [json.loads(line) for line in out.getvalue().splitlines()]
    assert summary.status == "complete" and store.priced == 3
    assert sum(w["fanwise"]["cost_usd"] for w in written) == store.spent > 0
