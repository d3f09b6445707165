"""``--otel``: export spans and metrics over OTLP/HTTP; on by itself when an endpoint is set.

Wiring only: what to set up, and how, is ``fanwise.telemetry.setup``'s. The flag acts while the
command line is parsed, so a missing extra is reported before any request is paid for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fanwise.cli.errors import InputError
from fanwise.telemetry.setup import TelemetryError, configure, wanted


def otel_option() -> Callable[[Any], Any]:
    return click.option(
        "--otel",
        is_flag=True,
        expose_value=False,
        callback=_set_up,
        help=(
            "Export a span per run, phase and call, and the GenAI metrics, over OTLP/HTTP "
            "(docs/observability.md). On by itself when OTEL_EXPORTER_OTLP_ENDPOINT is set."
        ),
    )


def _set_up(ctx: click.Context, param: click.Parameter, flag: bool) -> None:
    if not wanted(flag):
        return
    try:
        configure(flag)
    except TelemetryError as exc:
        if flag:
            raise InputError(f"--otel: {exc}") from None
        click.echo(f"fanwise: warning: no OpenTelemetry export: {exc}", err=True)
