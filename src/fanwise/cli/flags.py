"""The flags of the run commands, each command taking only those that apply to it.

``workflow_options`` (travel, research, run) and ``batch_options`` (batch) share the model,
pacing, output, journal, limit and engine flags; ``--min-answers``, ``--json`` and ``--stream``
are the workflow's alone. Each command receives the shared ones as one ``RunOptions``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from fanwise.cli.engine_flags import DeadlineParam, engine_options
from fanwise.cli.journal_flags import journal_options
from fanwise.cli.limit_flags import limit_options
from fanwise.cli.numbers import FiniteRange
from fanwise.cli.otel_flag import otel_option
from fanwise.models.base import DEFAULT_MODEL
from fanwise.plans import REASONING_EFFORTS

F = TypeVar("F", bound=Callable[..., Any])
Option = Callable[[Any], Any]


class SecondsRange(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click stubs
    """``LOW,HIGH`` in seconds, e.g. ``0.5,3``."""

    name = "LOW,HIGH"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        try:
            low, high = (float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not LOW,HIGH in seconds, e.g. 0.5,3", param, ctx)
        if not 0 <= low <= high:
            self.fail(f"{value!r} needs 0 <= LOW <= HIGH", param, ctx)
        return low, high


def model_options(default: str) -> list[Option]:
    """Who answers: model, provider, server, API, transport, reasoning effort. ``default`` says
    where the model and effort come from without the flag (a plan under it; a line over it)."""
    return [
        click.option(
            "--model",
            "-m",
            envvar="FANWISE_MODEL",
            help=f"Model name [default: {DEFAULT_MODEL}{default}; claude-sonnet-4-5 with "
            "Anthropic, gemini-2.5-flash with Gemini].",
        ),
        click.option(
            "--provider",
            type=click.Choice(["auto", "openai", "anthropic", "gemini", "offline"]),
            default="auto",
            show_default=True,
            help="auto: the provider a claude-* or gemini-* model names, else the first whose key "
            "is set (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY), else the built-in "
            "offline model.",
        ),
        click.option(
            "--base-url",
            help="The chosen provider's server: any OpenAI-compatible one, e.g. "
            "http://127.0.0.1:8000/v1 (vLLM, Ollama...); with --provider anthropic or gemini, "
            "its API root, e.g. http://127.0.0.1:8000 [default: the provider's own "
            "OPENAI_BASE_URL, ANTHROPIC_BASE_URL or GEMINI_BASE_URL].",
        ),
        click.option(
            "--api",
            type=click.Choice(["responses", "chat"]),
            default="responses",
            show_default=True,
            help="Responses API, or Chat Completions for servers without it.",
        ),
        click.option(
            "--transport",
            type=click.Choice(["aiohttp", "sdk"]),
            default="aiohttp",
            show_default=True,
            envvar="FANWISE_TRANSPORT",
            help="aiohttp: fanwise's lean HTTP client (about 10x less CPU per call); sdk: the "
            "official SDK (openai's, or anthropic's with --provider anthropic). Same requests, "
            "same error kinds.",
        ),
        click.option(
            "--reasoning-effort",
            type=click.Choice([*REASONING_EFFORTS, "unset"]),
            help=f"Reasoning effort [default: minimal{default}]; unset sends none.",
        ),
    ]


def pacing_options(deadline_help: str) -> list[Option]:
    """How the calls run: concurrency, timeouts, the deadline, retries, failure mode."""
    return [
        click.option(
            "--concurrency",
            "-c",
            type=click.IntRange(min=1),
            default=8,
            show_default=True,
            help="Most calls in flight at once.",
        ),
        click.option(
            "--timeout",
            type=FiniteRange(min=0, min_open=True),
            help="Seconds each attempt of a call may take; a slower one is retried.",
        ),
        click.option("--deadline", type=DeadlineParam(), help=deadline_help),
        click.option(
            "--retries",
            type=click.IntRange(min=0),
            default=3,
            show_default=True,
            help="Retries per call for retryable errors (429, 5xx, timeouts, drops).",
        ),
        click.option(
            "--repair/--no-repair",
            default=True,
            show_default=True,
            help="An answer that breaks its JSON Schema is asked again with the error appended; "
            "--no-repair sends the same request again.",
        ),
        click.option(
            "--mode",
            type=click.Choice(["settled", "all"]),
            default="settled",
            show_default=True,
            help="settled: keep every answer (allSettled); all: abort on the first failure.",
        ),
    ]


def output_options(out_help: str) -> list[Option]:
    """Where the result goes and what is shown while it runs."""
    return [
        click.option("--out", "-o", type=click.Path(dir_okay=False, writable=True), help=out_help),
        click.option(
            "--quiet", is_flag=True, help="No progress lines on stderr; errors still show."
        ),
        click.option(
            "--plain",
            is_flag=True,
            help="Plain progress lines on stderr, even on a terminal (no live view); for a "
            "batch without a terminal, every line rather than counts every few seconds.",
        ),
        click.option(
            "--report",
            type=click.Path(dir_okay=False, writable=True),
            metavar="FILE.html",
            help="Also write a self-contained HTML report: timeline of every call, answers, stats.",
        ),
    ]


def offline_options() -> list[Option]:
    """The built-in offline model's seed, latency and failure rate."""
    return [
        click.option(
            "--seed", type=int, default=0, show_default=True, help="Seed of the offline model."
        ),
        click.option(
            "--offline-latency",
            type=SecondsRange(),
            default="0.5,3",
            show_default=True,
            help="Offline model latency range LOW,HIGH in seconds.",
        ),
        click.option(
            "--offline-fail-rate",
            type=FiniteRange(0, 1),
            default=0.0,
            show_default=True,
            help="Offline model: chance that an attempt fails (429, 500 or 400).",
        ),
    ]


def synthesis_options() -> list[Option]:
    """A workflow's own: the quorum for its synthesis and how the synthesis is printed."""
    return [
        click.option(
            "--min-answers",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Synthesize only when at least this many answers arrived.",
        ),
        click.option(
            "--max-output-tokens",
            type=click.IntRange(min=1),
            help="Cap each answer and the synthesis at this many output tokens [default: the "
            "plan's, else none]; sent as the API and server honour it (max_tokens to a "
            "--base-url server).",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="Print one JSON document instead of Markdown."
        ),
        click.option(
            "--stream/--no-stream",
            default=True,
            show_default=True,
            help="Print the synthesis as it is written; --no-stream prints it once complete.",
        ),
    ]


def _attach(command: F, options: list[Option]) -> F:
    for option in reversed(options):
        command = option(command)
    return command


def workflow_options(command: F) -> F:
    """The flags of ``travel``, ``research`` and ``run``."""
    return _attach(
        command,
        [
            *model_options(", or the plan's"),
            *pacing_options(
                "How long the whole research phase may take (seconds, 2h, 07:00, an ISO time); "
                "unfinished calls count as timeouts."
            ),
            *synthesis_options(),
            click.option(
                "--warm/--no-warm",
                default=True,
                show_default=True,
                help="With a shared --context long enough to cache, send one question first and "
                "the rest once its answer begins, so they read the context from the provider's "
                "prompt cache (docs/caching.md); --no-warm sends all at once.",
            ),
            *output_options("Write the result here, not to stdout."),
            *offline_options(),
            *journal_options(),
            *limit_options(),
            *engine_options(),
            otel_option(),
        ],
    )


def batch_options(command: F) -> F:
    """The flags of ``batch``: the workflow's, less the synthesis ones."""
    return _attach(
        command,
        [
            *model_options("; a line's own wins"),
            *pacing_options(
                "How long the whole batch may take (seconds, 2h, 07:00, an ISO time); unfinished "
                "calls count as timeouts. With --engine auto: the time to finish by."
            ),
            *output_options("Write the result lines here (JSONL), not to stdout."),
            *offline_options(),
            *journal_options(),
            *limit_options(),
            *engine_options(),
            otel_option(),
        ],
    )


__all__ = ["SecondsRange", "batch_options", "workflow_options"]
