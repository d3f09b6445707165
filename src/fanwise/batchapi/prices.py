"""What the Batch API charges: half the standard price, for input and output tokens alike."""

from __future__ import annotations

from fanwise.dispatch.base import BATCH_DISCOUNT
from fanwise.prices import Price, PriceTable


def batch_prices(table: PriceTable, discount: float = BATCH_DISCOUNT) -> PriceTable:
    """``table`` at Batch API prices: every rate times ``discount``."""

    def cheaper(price: Price) -> Price:
        cached = None if price.cached_input is None else price.cached_input * discount
        return Price(price.input * discount, price.output * discount, cached)

    taken = (
        f"{table.taken}; Batch API: x{discount:g}" if table.taken else f"Batch API: x{discount:g}"
    )
    return PriceTable({name: cheaper(p) for name, p in table.prices.items()}, taken)


__all__ = ["BATCH_DISCOUNT", "batch_prices"]
