"""Back-pressure: a 429 that the limiter judged evidence of a limit, marked on the error itself.

The retry loop reads the mark to tell back-pressure (the call goes back to wait for a permit, and
the attempt does not count against ``--retries``) from noise (an isolated 429, which does). The
mark travels with the exception, so a pool of endpoints, or a Ray worker whose verdict comes
from the shared limiter actor, marks it the same way.
"""

from __future__ import annotations

_MARK = "_fanwise_back_pressure"


def mark_back_pressure(error: BaseException) -> None:
    """Mark ``error`` (a 429) as evidence of a limit: back-pressure, not a failed attempt."""
    setattr(error, _MARK, True)


def is_back_pressure(error: BaseException) -> bool:
    """Whether the limiter judged ``error`` evidence of a limit (``mark_back_pressure``)."""
    return getattr(error, _MARK, False) is True


__all__ = ["is_back_pressure", "mark_back_pressure"]
