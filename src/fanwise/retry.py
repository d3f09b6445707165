"""Which failures are tried again, and how long to wait first. One place decides."""

from __future__ import annotations

import random
from dataclasses import dataclass

from fanwise.outcome import CallError, is_retryable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; a server's ``Retry-After`` wins exactly.

    ``retries`` is the number of tries after the first, so a call makes at most
    ``retries + 1`` attempts.
    """

    retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must not be negative")

    def delay(self, attempt: int, error: BaseException, rng: random.Random) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when the call should give up."""
        if attempt > self.retries or not is_retryable(error):
            return None
        if isinstance(error, CallError) and error.retry_after is not None:
            return max(0.0, error.retry_after)
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class RetryBudget:
    """A run-wide cap on retries, so that a dead API does not multiply the bill."""

    def __init__(self, total: int | None) -> None:
        if total is not None and total < 0:
            raise ValueError(f"a retry budget must be 0 or more, got {total}")
        self.total = total
        self.spent = 0

    def try_spend(self) -> bool:
        if self.total is not None and self.spent >= self.total:
            return False
        self.spent += 1
        return True

    def __repr__(self) -> str:
        return f"RetryBudget(total={self.total}, spent={self.spent})"
