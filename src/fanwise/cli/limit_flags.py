"""The rate-limit and retry-budget flags.

Wiring only: the limits live in ``fanwise.limits`` (``fanwise.get_limiter`` picks them), the
retry budget in ``fanwise.retry``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fanwise.retry import MAX_WAIT


def limit_options() -> list[Callable[[Any], Any]]:
    """``--rpm``, ``--tpm``, ``--retry-budget``, ``--max-wait`` and ``--adapt/--no-adapt``."""
    return [
        click.option(
            "--rpm",
            type=click.IntRange(min=1),
            help="Send at most this many requests a minute (a client-side token bucket).",
        ),
        click.option(
            "--tpm",
            type=click.IntRange(min=1),
            help="Spend at most this many tokens a minute (estimated, corrected from usage).",
        ),
        click.option(
            "--retry-budget",
            type=click.IntRange(min=0),
            metavar="N",
            help="Retries the whole run may make, so a dead API does not multiply the bill.",
        ),
        click.option(
            "--max-wait",
            type=click.FloatRange(min=0),
            default=MAX_WAIT,
            show_default=True,
            metavar="SECONDS",
            help="Most seconds a call waits for capacity once the server's rate limit refused "
            "it; such a 429 is back-pressure and does not count against --retries.",
        ),
        click.option(
            "--adapt/--no-adapt",
            default=True,
            show_default=True,
            help="On evidence of a limit (not an isolated 429), pace by the provider's "
            "rate-limit headers (OpenAI's, Anthropic's) or a learned rate, and shrink concurrency.",
        ),
    ]
