"""What a settled call cost: the one function every reader of a cost goes through.

The engine calls it once per call as the call settles (through its store's price table) and
puts the result in the call's ``SettledRecord``: the journal, the running total, the budget,
a batch's output line and the live view read it there, never pricing the call again.
"""

from __future__ import annotations

from fanwise.calls import Call, CallOutcome
from fanwise.dispatch.base import BATCH_DISCOUNT, answered_via
from fanwise.outcome import Fulfilled
from fanwise.prices import PriceTable
from fanwise.structured import outcome_usage


def call_cost(prices: PriceTable, call: Call, outcome: CallOutcome) -> float | None:
    """What a settled call cost, failed attempts included (an answer that broke its schema, a
    refusal); nothing when cached or when no attempt was answered; None if unpriced, or when
    the server reported no usage (unknown, not $0). A batch answer of an auto run is at the
    Batch API's price."""
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


__all__ = ["call_cost"]
