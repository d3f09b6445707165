"""A number flag that is a number: ``click.FloatRange`` lets ``nan`` through every bound.

``--timeout nan`` used to run every call into "attempt timed out after nans", and
``--max-cost nan`` to set no budget at all. ``FiniteRange`` refuses ``nan`` and the infinities
as a usage error (exit 2) before anything runs.
"""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteRange(click.FloatRange):
    """``click.FloatRange`` that accepts only finite numbers."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number
