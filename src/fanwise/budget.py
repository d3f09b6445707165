"""``--max-cost``: stop launching calls once the next one could take the run past its budget.

The engine asks ``Budget.admit(call)`` just before a call's first request is sent. The budget
admits it when what was spent, plus an estimate for every call still in flight, plus an estimate
for this one stays within the limit. Otherwise it refuses, and from then on refuses every call:
the run stops launching, the calls in flight finish, and the refused calls settle as ``Rejected``
(``Cancelled``) with a message that names the budget. A resume with a larger budget sends them.

An estimate is the prompt's generous token guess (4 characters a token) at the input price, plus
``max_output_tokens`` (or, when unset, the mean output of the calls answered so far, 1,000
tokens before any) at the output price. The actual cost replaces the estimate once a call is
answered, so the spent total is exact; only the look-ahead is a guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from fanwise.engine import Call
from fanwise.events import CallSettled, Event
from fanwise.limits import estimate_tokens
from fanwise.models.base import Completion, Request, Usage
from fanwise.outcome import Cancelled, Fulfilled
from fanwise.prices import Price, PriceTable, format_usd
from fanwise.structured import attempts_usage

DEFAULT_OUTPUT_TOKENS = 1000


class BudgetExceeded(Cancelled):
    """A call not sent because it could take the run past its cost budget."""


class Budget:
    """The engine's admission check (``admit``), and an observer of its events (``__call__``)."""

    def __init__(
        self,
        limit: float,
        prices: PriceTable,
        *,
        price_of: Callable[[Request], Price | None] | None = None,
    ) -> None:
        if limit < 0:
            raise ValueError(f"a cost budget must be 0 or more dollars, got {limit}")
        self.limit = limit
        self.prices = prices
        self.price_of = price_of or (lambda request: prices.price(request.model))
        self.spent = 0.0
        self.refused = 0
        self.stopped = False
        # Per call key: each admitted call's estimate and model, until it settles.
        self._in_flight: defaultdict[str, list[tuple[float, str]]] = defaultdict(list)
        self._answered = 0
        self._output_tokens = 0

    @property
    def reserved(self) -> float:
        return sum(e for estimates in self._in_flight.values() for e, _ in estimates)

    def estimate(self, call: Call) -> float | None:
        """What ``call`` may cost, or None when its model has no price."""
        price = self.price_of(call.request)
        if price is None:
            return None
        request = call.request
        output = request.max_output_tokens
        if output is None:
            output = (
                self._output_tokens // self._answered if self._answered else DEFAULT_OUTPUT_TOKENS
            )
        prompt = (request.instructions or "") + request.prompt
        return price.cost(Usage(input_tokens=estimate_tokens(prompt), output_tokens=output))

    def admit(self, call: Call) -> None:
        """Return to let the call be sent; raise ``BudgetExceeded`` to refuse it."""
        estimate = self.estimate(call)
        if estimate is None:  # refuses this call only: the others may have a price
            self._refuse(
                f"model {call.request.model!r} has no price, so the budget cannot bound it"
            )
        assert estimate is not None
        if self.stopped or self.spent + self.reserved + estimate > self.limit:
            self.stopped = True
            self._refuse(
                f"{format_usd(self.spent)} spent and {format_usd(self.reserved)} in flight, "
                f"this call ~{format_usd(estimate)}"
            )
        self._in_flight[call.key].append((estimate, call.request.model))

    def _refuse(self, why: str) -> None:
        self.refused += 1
        raise BudgetExceeded(
            f"not sent: the cost budget of {format_usd(self.limit)} would be passed ({why})"
        )

    def __call__(self, event: Event) -> None:
        """Settle the estimate of a call that was admitted: its real cost replaces it."""
        if not isinstance(event, CallSettled):
            return
        outcome = event.outcome
        if isinstance(outcome, Fulfilled) and outcome.cached:
            return  # answered from the journal: never admitted, costs nothing
        if not isinstance(outcome, Fulfilled) and isinstance(outcome.error, BudgetExceeded):
            return  # refused: never admitted
        estimates = self._in_flight.get(event.key)
        if not estimates:
            return
        estimate, model = estimates.pop(0)
        if not estimates:
            del self._in_flight[event.key]
        if isinstance(outcome, Fulfilled):
            self.spent += self._actual(outcome.value, estimate)
        else:  # a refusal, answers that broke their schema: their tokens were paid for
            self.spent += self.prices.cost(model, attempts_usage(outcome.attempts)) or 0.0

    def _actual(self, completion: Completion, estimate: float) -> float:
        self._answered += 1
        self._output_tokens += completion.usage.output_tokens
        cost = self.prices.cost(completion.model, completion.usage) if completion.model else None
        return estimate if cost is None else cost


__all__ = ["DEFAULT_OUTPUT_TOKENS", "Budget", "BudgetExceeded"]
