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
            type=click.Choice(["live", "batch", "ray"]),
            default="live",
            show_default=True,
            help="live: calls from this process; batch: OpenAI's Batch API or Anthropic's Message "
            "Batches (half price, within 24 h; a workflow's synthesis stays live); ray: spread "
            "over Ray workers.",
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
