"""``--max-cost``: stop launching calls once the next one could take the run past its budget.

The engine asks ``Budget.admit(call)`` just before a call's first request is sent. The budget
admits it when what was spent, plus an estimate for every call still in flight, plus an estimate
for this one stays within the limit. When it does not fit only because of the calls in flight
(whose estimates their real cost will soon replace), a patient budget (a live run's) holds the
call until one of them settles and asks again; when it cannot fit, it refuses, and from then on
refuses every call: the run stops launching, the calls in flight finish, and the refused calls
settle as ``Rejected`` (``Cancelled``) with a message whose arithmetic a user can check
(``$0.0021 spent + $0.0014 in flight + this call ~$0.0020 = $0.0055 > $0.0048``). A resume
with a larger budget sends them.

An estimate (``prices.estimate_cost``) is the request's input (its text, 4 characters a token,
a generous guess) at the input price, plus its output: before any call of the model has been
answered, the request's ``max_output_tokens`` (1,000 tokens when it has none); after, the 90th
percentile of what the model's answered calls produced, never above the cap. With nothing in
flight and nothing learnt yet, a patient budget sends one call alone to learn from, when its
input alone fits. The actual cost replaces the estimate once a call is answered, so the spent
total is exact; only the look-ahead is a guess.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable

from fanwise.engine import Call
from fanwise.events import CallSettled, Event
from fanwise.models.base import Completion, Request
from fanwise.outcome import Cancelled, Fulfilled
from fanwise.prices import (
    DEFAULT_OUTPUT_TOKENS,
    Price,
    PriceTable,
    UsageHistory,
    cache_group,
    estimate_cost,
    format_usd,
)
from fanwise.structured import attempts_usage


def _usd(amount: float) -> str:
    """Dollars to the millionth: the terms of a refusal add up as shown."""
    return f"${amount:.6f}".rstrip("0").rstrip(".") if amount else "$0"


class BudgetExceeded(Cancelled):
    """A call not sent because it could take the run past its cost budget."""


class Budget:
    """The engine's admission check (``admit``), and an observer of its events (``__call__``).

    ``patient``: hold a call that does not fit yet while calls are in flight (a live run), rather
    than refuse it at once (a batch, whose calls all go at once and settle together).
    """

    def __init__(
        self,
        limit: float,
        prices: PriceTable,
        *,
        price_of: Callable[[Request], Price | None] | None = None,
        patient: bool = False,
    ) -> None:
        if limit < 0:
            raise ValueError(f"a cost budget must be 0 or more dollars, got {limit}")
        self.limit = limit
        self.prices = prices
        self.price_of = price_of or (lambda request: prices.price(request.model))
        self.patient = patient
        self.spent = 0.0
        self.refused = 0
        self.stopped = False
        # Per call key: each admitted call's estimate, model and prompt-cache group, until it
        # settles.
        self._in_flight: defaultdict[str, list[tuple[float, str, str]]] = defaultdict(list)
        self._usage = UsageHistory()
        self._held: deque[tuple[Call, asyncio.Future[None]]] = deque()

    @property
    def reserved(self) -> float:
        return sum(e for estimates in self._in_flight.values() for e, _, _ in estimates)

    def estimate(self, call: Call) -> float | None:
        """What ``call`` may cost, or None when its model has no price."""
        price = self.price_of(call.request)
        return None if price is None else estimate_cost(price, call.request, self._usage)

    def admit(self, call: Call) -> Awaitable[None] | None:
        """None to let the call be sent now; an awaitable that holds it until it may be (or
        raises ``BudgetExceeded``); raise ``BudgetExceeded`` to refuse it at once."""
        estimate = self.estimate(call)
        if estimate is None:  # refuses this call only: the others may have a price
            self._refuse(
                f"model {call.request.model!r} has no price, so the budget cannot bound it"
            )
        assert estimate is not None
        if not self.stopped and not self._held and self._fits(estimate):
            self._reserve(call, estimate)
            return None
        if not self.stopped and self.patient:
            if self._in_flight or self._held:
                held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._held.append((call, held))
                return held
            if self._probe(call):
                self._reserve(call, estimate)
                return None
        self.stopped = True
        self._refuse(self._arithmetic(estimate))
        return None

    def _fits(self, estimate: float) -> bool:
        return self.spent + self.reserved + estimate <= self.limit

    def _probe(self, call: Call) -> bool:
        """Whether to send ``call`` alone to learn from: nothing learnt of its model yet, and
        its input alone fits what is left."""
        request = call.request
        price = self.price_of(request)
        if price is None or self._usage.outputs(request.model):
            return False
        floor = estimate_cost(price, request, self._usage, output_tokens=0)
        return self.spent + floor <= self.limit

    def _reserve(self, call: Call, estimate: float) -> None:
        group = cache_group(call.request)
        self._in_flight[call.key].append((estimate, call.request.model, group))

    def _arithmetic(self, estimate: float) -> str:
        """Why a call does not fit, as a sum a user can check (each term rounded first)."""
        spent, flight, this = (round(x, 6) for x in (self.spent, self.reserved, estimate))
        total = spent + flight + this
        return (
            f"{_usd(spent)} spent + {_usd(flight)} in flight + this call ~{_usd(this)} "
            f"= {_usd(total)} > {_usd(self.limit)}"
        )

    def _refuse(self, why: str) -> None:
        self.refused += 1
        raise BudgetExceeded(
            f"not sent: the cost budget of {format_usd(self.limit)} would be passed: {why}"
        )

    def _release(self) -> None:
        """After a call settles: let the held calls that now fit go, in order; once nothing is
        in flight, refuse those that still do not (or probe with the first)."""
        while self._held:
            call, held = self._held[0]
            if held.done():  # its task was cancelled
                self._held.popleft()
                continue
            estimate = self.estimate(call)
            if estimate is not None and not self.stopped and self._fits(estimate):
                self._held.popleft()
                self._reserve(call, estimate)
                held.set_result(None)
                continue
            if self._in_flight:
                return  # wait for the next settle
            self._held.popleft()
            if estimate is not None and not self.stopped and self._probe(call):
                self._reserve(call, estimate)
                held.set_result(None)
                return
            self.stopped = True
            self.refused += 1
            why = self._arithmetic(estimate) if estimate is not None else "no price"
            held.set_exception(
                BudgetExceeded(
                    f"not sent: the cost budget of {format_usd(self.limit)} would be passed: {why}"
                )
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
            self._release()  # a held call cut short (a deadline) frees its turn
            return
        estimate, model, group = estimates.pop(0)
        if not estimates:
            del self._in_flight[event.key]
        # The engine's record: the call priced once (none when its engine prices nothing).
        cost = None if event.record is None else event.record.cost
        if isinstance(outcome, Fulfilled):
            self._usage.add(model, outcome.value.usage, group)
            cost = self._cost(outcome.value) if cost is None else cost
            self.spent += estimate if cost is None else cost
        else:  # a refusal, answers that broke their schema: their tokens were paid for
            if cost is None:
                cost = self.prices.cost(model, attempts_usage(outcome.attempts))
            self.spent += cost or 0.0
        self._release()

    def _cost(self, completion: Completion) -> float | None:
        """A completion's cost, when its engine priced none (an engine without a store)."""
        return self.prices.cost(completion.model, completion.usage) if completion.model else None


__all__ = ["DEFAULT_OUTPUT_TOKENS", "Budget", "BudgetExceeded"]
