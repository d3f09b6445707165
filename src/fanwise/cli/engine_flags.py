"""The flags that choose where the calls run: live, the Batch API, or Ray; and on which endpoints.

Wiring only: the engines live in ``fanwise.batchapi``, ``fanwise.cluster`` and
``fanwise.endpoints``; ``fanwise.cli.engines`` builds the one the flags ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fanwise.cli.numbers import FiniteRange
from fanwise.endpoints import parse_endpoints


class DeadlineParam(click.ParamType):  # type: ignore[type-arg]  # generic only in newer stubs
    """``--deadline``: seconds, a span (``2h``), a time of day (``07:00``) or an ISO time; the
    seconds from now to it."""

    name = "WHEN"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        from datetime import datetime

        from fanwise.dispatch.deadline import parse_deadline

        try:
            return parse_deadline(str(value), datetime.now().astimezone())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class EndpointList(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click stubs
    """``URL1,URL2,...``: several OpenAI-compatible endpoints."""

    name = "URL1,URL2,..."

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, ...]:
        if isinstance(value, tuple | list):
            return tuple(value)
        try:
            return parse_endpoints(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def engine_options() -> list[Callable[[Any], Any]]:
    """``--engine``, ``--endpoints``, ``--retry-with``, ``--batch-poll``, ``--workers`` and
    ``--ray-address``."""
    return [
        click.option(
            "--engine",
            type=click.Choice(["live", "batch", "ray", "auto"]),
            default="live",
            show_default=True,
            help="live: calls from this process; batch: OpenAI's Batch API or Anthropic's Message "
            "Batches (half price, within 24 h; a workflow's synthesis stays live); ray: spread "
            "over Ray workers; auto: the Batch API until --deadline needs live calls, then live "
            "for the lines it has not done (docs/deadline.md).",
        ),
        click.option(
            "--plan-only",
            is_flag=True,
            help="--engine auto: print the expected split (batch vs live) and cost, send nothing.",
        ),
        click.option(
            "--live-latency",
            type=FiniteRange(min=0, min_open=True),
            default=10.0,
            show_default=True,
            metavar="SECONDS",
            help="--engine auto: how long a live call is assumed to take until one has answered.",
        ),
        click.option(
            "--endpoints",
            type=EndpointList(),
            default=(),
            help="Spread the calls over several OpenAI-compatible endpoints (vLLM replicas...), "
            "each under its own --rpm/--tpm [default: --base-url, or the plan's endpoints].",
        ),
        click.option(
            "--retry-with",
            type=click.Choice(["batch", "live"]),
            default="batch",
            show_default=True,
            help="--engine batch: send expired or failed lines again in a new batch, or live.",
        ),
        click.option(
            "--batch-poll",
            type=FiniteRange(min=0, min_open=True),
            default=60.0,
            show_default=True,
            metavar="SECONDS",
            help="--engine batch: the longest wait between two looks at a running batch.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=2,
            show_default=True,
            help="--engine ray: worker actors; --concurrency is per worker.",
        ),
        click.option(
            "--ray-address",
            envvar="RAY_ADDRESS",
            metavar="ADDRESS",
            help="--engine ray: the cluster to join (auto: one started with `ray start` here) "
            "[default: start a local Ray].",
        ),
    ]
