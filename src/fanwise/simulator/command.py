"""``python -m fanwise.simulator`` and ``fanwise simulate``: run the simulator as a process.

Wiring only: the specs are parsed by ``fanwise.simulator.config`` and every behaviour lives in
the library. The first line on stdout is the API URL, flushed, so a parent process can read it.
The command lives beside the simulator, not in ``fanwise.cli``, so that starting a simulator
process never depends on the rest of the command line importing cleanly;
the ``fanwise`` group (``fanwise.cli``) loads it from here when ``fanwise simulate`` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from fanwise.simulator import ConfigError, Latency, ScriptRule, Simulator, SimulatorConfig
from fanwise.simulator.config import BatchTiming, parse_fault, parse_rpm_change
from fanwise.simulator.ratelimit import LIMIT_STYLES


class _Spec(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click stubs
    """A simulator spec parsed by the library; its ``ConfigError`` becomes a usage error."""

    def __init__(self, name: str, parse: Any) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    "-p",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--latency",
    "-l",
    type=_Spec("SPEC", Latency.parse),
    default="0",
    show_default=True,
    help="Seconds before answering: 0.2, uniform:LO,HI or lognormal:MEDIAN,SIGMA.",
)
@click.option(
    "--fail",
    "-f",
    "faults",
    type=_Spec("KIND=P", parse_fault),
    multiple=True,
    help="Inject a fault with probability P per request; repeatable. KIND is an HTTP status "
    "(429, 500, 503, 529, 401...), drop, hang, garbage, empty or spend.",
)
@click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute (token bucket).")
@click.option(
    "--rpm-change",
    type=_Spec("SECONDS=RPM", parse_rpm_change),
    help="Change the request limit mid-run: e.g. 10=200 makes it 200 rpm 10 s after start.",
)
@click.option("--tpm", type=click.IntRange(min=1), help="Tokens per minute (token bucket).")
@click.option(
    "--limit-style",
    type=click.Choice(LIMIT_STYLES),
    default="openai",
    show_default=True,
    help="How limits are told: x-ratelimit-* headers and Retry-After (openai), a bare "
    "whole-second Retry-After (proxy), RetryInfo in the 429's body (gemini), or another "
    "dialect (docs/simulator.md): reset = until the next request (next-request), fixed "
    "windows (fixed-window-seconds, fixed-window-epoch, ietf), RFC 3339 resets (anthropic), "
    "Retry-After only (retry-after-only), headers with room while bursts are refused "
    "(quantized).",
)
@click.option(
    "--burst",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds of the rate a bucket holds (the window, for fixed windows): 1 lets a "
    "600 rpm limit take 10 requests at once.",
)
@click.option("--start-empty", is_flag=True, help="Start the buckets (and the first window) spent.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for latency and faults.")
@click.option(
    "--retry-after",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds that injected 429s and 503s ask the client to wait.",
)
@click.option(
    "--context-window",
    type=click.IntRange(min=1),
    default=400_000,
    show_default=True,
    help="Input tokens above which a request gets 400 context_length_exceeded.",
)
@click.option(
    "--script",
    "script_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSON file of scripted faults: [{"match": "...", "faults": ["429", "ok"]}].',
)
@click.option(
    "--batch-speed",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    help="Batch API clock: simulated seconds per real second (3600: a 24h window is 24 s).",
)
@click.option(
    "--batch-duration",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Simulated seconds a batch takes to run its lines; over 86400 makes batches expire.",
)
@click.option(
    "--batch-finalize",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Simulated seconds a batch takes to finalize, and to end after a cancel.",
)
@click.option(
    "--batch-stall-at",
    type=click.FloatRange(min=0, max=1),
    metavar="SHARE",
    help="Batches stall after this share of their lines (0.4: 40 %%) until cancelled or expired.",
)
@click.option(
    "--batch-expire-rate",
    type=click.FloatRange(min=0, max=1),
    default=0.0,
    metavar="SHARE",
    help="Share of batch lines never run, returned as batch_expired.",
)
@click.option(
    "--batch-queue-tokens",
    type=click.IntRange(min=1),
    help="Enqueued-token limit of the Batch API: a batch past it fails (token_limit_exceeded).",
)
def simulate(
    host: str,
    port: int,
    latency: Latency,
    faults: tuple[tuple[str, float], ...],
    rpm: int | None,
    rpm_change: tuple[float, int] | None,
    tpm: int | None,
    limit_style: str,
    burst: float,
    start_empty: bool,
    seed: int,
    retry_after: float,
    context_window: int,
    script_file: Path | None,
    batch_speed: float,
    batch_duration: float,
    batch_finalize: float,
    batch_stall_at: float | None,
    batch_expire_rate: float,
    batch_queue_tokens: int | None,
) -> None:
    """Run an OpenAI-compatible API on HOST:PORT with simulated latency, faults and rate limits.

    Point any OpenAI client at the printed URL (the Files and Batches APIs too, on a fast
    clock: --batch-speed). GET /_stats shows what it has seen;
    POST /_control/script and /_control/reset steer it. See docs/simulator.md.
    """
    try:
        config = SimulatorConfig(
            latency=latency,
            faults=dict(faults),
            rpm=rpm,
            tpm=tpm,
            seed=seed,
            retry_after=retry_after,
            context_window=context_window,
            limit_style=limit_style,
            burst=burst,
            start_empty=start_empty,
            rpm_change=rpm_change,
            script=_load_script(script_file) if script_file else (),
            batch=BatchTiming(
                speed=batch_speed,
                duration=batch_duration,
                finalize=batch_finalize,
                queue_tokens=batch_queue_tokens,
                stall_at=batch_stall_at,
                expire_rate=batch_expire_rate,
            ),
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        asyncio.run(_serve(Simulator(config, host=host, port=port)))
    except OSError as exc:
        raise _PortTaken(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another --port (0 picks a free one)"
        ) from None


class _PortTaken(click.ClickException):
    """A usage error (exit 2): the port the user chose cannot be listened on."""

    exit_code = 2


def _load_script(path: Path) -> tuple[ScriptRule, ...]:
    try:
        data = json.loads(path.read_text())
        rules = data if isinstance(data, list) else [data]
        return tuple(ScriptRule.from_dict(rule) for rule in rules)
    except (OSError, ValueError, RecursionError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--script") from None


async def _serve(sim: Simulator) -> None:
    """Serve until SIGINT or SIGTERM, announcing the URL on stdout's first line."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with sim:
        click.echo(f"fanwise simulator listening on {sim.base_url}")
        sys.stdout.flush()
        click.echo(f"config: {sim.config!r}", err=True)
        await stop.wait()


__all__ = ["simulate"]
