"""The rate-limit and retry-budget flags, and the limiter they ask for.

Wiring only: the limits live in ``fanwise.limits``, the retry budget in ``fanwise.retry``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fanwise.limits import Limiter, build_limiter


def limit_options() -> list[Callable[[Any], Any]]:
    """``--rpm``, ``--tpm``, ``--retry-budget`` and ``--adapt/--no-adapt``."""
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
            "--adapt/--no-adapt",
            default=True,
            show_default=True,
            help="With OpenAI: pace by the x-ratelimit-* headers and shrink concurrency on 429s.",
        ),
    ]


def make_limiter(*, rpm: int | None, tpm: int | None, adapt: bool, provider: str) -> Limiter:
    """Client buckets as asked; the adaptive limits only for a server that sends the headers."""
    return build_limiter(rpm=rpm, tpm=tpm, adaptive=adapt and provider == "openai")
