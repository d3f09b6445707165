"""Which failures are tried again, and how long to wait first. One place decides.

The error's kind decides whether to retry (the models classify every failure; see ``outcome``):

    rate_limited       429                                   retried, Retry-After honoured
    server             409, every 5xx                        retried, Retry-After honoured
    timeout            408, an attempt past ``--timeout``    retried
    network            refused, reset, dropped connection    retried
    invalid_response   a 2xx that is not what was promised   retried
    bad_request        400 (context length too), 404, 422,   never
                       a 5xx naming an unsupported parameter
    auth               401, 403, a 429 for an empty quota    never
    cancelled / exception                                    never

The wait is the server's ``retry-after-ms`` or ``Retry-After`` (or, from Gemini, the
``RetryInfo.retryDelay`` in the 429's body: ``models.compat.retry_delay``) exactly when it sent
one, else exponential backoff with full jitter: uniform in
``[0, min(max_delay, base_delay * 2**(n-1))]`` after attempt ``n``. The wait holds only the call
that failed: whether the others slow down is the limiter's decision, on evidence of a limit
(``fanwise.limits``). ``retries`` caps the attempts of one call; a ``RetryBudget`` caps the
retries of a whole run.

Back-pressure is not a failed attempt: a 429 that the limiter judged evidence of a limit
(``fanwise.limits.is_back_pressure``) sends the call back to wait for a permit, without spending
one of its ``retries``. Only the run's deadline, the retry budget, or ``max_wait`` (the most a
call may spend waiting for capacity once a limit has refused it, ``--max-wait``) ends it; the
last ends it as ``MaxWaitExceeded``, a ``rate_limited`` rejection that says so.

A refused connection is a server that is not listening (yet): a local model server restarting
takes longer than three quick retries (~2 s), so a refusal is retried after ``REFUSED_WAITS``
(about 30 s in all, with equal jitter), however few ``retries`` allow, unless retries are off;
the deadline and the retry budget still bound it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from fanwise.outcome import CallError, RateLimited, is_retryable

MAX_WAIT = 600.0
"""Seconds a call may wait for capacity under a rate limit by default (``--max-wait``)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; a server's ``Retry-After`` wins exactly.

    ``retries`` is the number of tries after the first, so a call makes at most
    ``retries + 1`` attempts, back-pressure aside: ``max_wait`` seconds (None: no cap) is how
    long a call may keep waiting for capacity after the first 429 that showed a limit.
    """

    retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_wait: float | None = MAX_WAIT

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must not be negative")
        if self.max_wait is not None and not self.max_wait >= 0:
            raise ValueError(f"max_wait must be seconds >= 0 or None, got {self.max_wait}")

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def delay(self, attempt: int, error: BaseException, rng: random.Random) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when the call should give up."""
        if self.retries and attempt <= len(REFUSED_WAITS) and _refused(error):
            cap = REFUSED_WAITS[attempt - 1]
            return cap / 2 + rng.uniform(0.0, cap / 2)
        if attempt > self.retries or not is_retryable(error):
            return None
        if isinstance(error, CallError) and error.retry_after is not None:
            return max(0.0, error.retry_after)
        return rng.uniform(0.0, self.backoff_cap(attempt))

    def backoff_cap(self, attempt: int) -> float:
        """The most full jitter may wait after attempt ``attempt`` (1-based)."""
        return min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))


class MaxWaitExceeded(RateLimited):
    """A call that waited ``max_wait`` seconds for capacity under a rate limit, and gave up."""

    @classmethod
    def after(cls, seconds: float, last: BaseException | None) -> MaxWaitExceeded:
        status = last.status_code if isinstance(last, CallError) else 429
        said = f"; the last answer: {last}" if last is not None and str(last) else ""
        return cls(
            f"rate limited: waited {seconds:.3g} s for capacity under the server's rate limit "
            f"and gave up (--max-wait){said}",
            status_code=status,
            code="max_wait_exceeded",
        )


REFUSED_WAITS = (1.0, 2.0, 4.0, 8.0, 15.0)
"""The most a call waits after each refused connection in a row: 30 s in all, the time a local
model server takes to restart; equal jitter waits at least half of each."""


def connection_refused(error: BaseException) -> bool:
    """Whether ``error`` (a network failure, or what caused it) is a refused connection."""
    seen: BaseException | None = error
    for _ in range(8):  # the transport's exception is a few causes down, never a long chain
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _refused(error: BaseException) -> bool:
    return is_retryable(error) and connection_refused(error)


class RetryBudget:
    """A run-wide cap on retries, so that a dead API does not multiply the bill.

    ``None`` means no cap. One budget may be shared by several engines, like a limiter.
    """

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


class NoWait:
    """Test mode: a sleep that records each backoff instead of waiting (``Engine(sleep=NoWait())``).

    It still yields to the event loop once, so other calls run between attempts as they would.
    """

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"NoWait(waits={self.waits})"


__all__ = [
    "MAX_WAIT",
    "REFUSED_WAITS",
    "MaxWaitExceeded",
    "NoWait",
    "RetryBudget",
    "RetryPolicy",
    "connection_refused",
]
