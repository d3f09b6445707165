"""The flags every workflow command shares, and turning them into a model and an engine.

This is wiring only: every decision lives in the library (provider choice in ``models``, retries
in ``retry``, limits in ``limits``); the CLI reads flags and hands them over.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from fanwise.cli.engine_flags import check_engine, engine_options
from fanwise.cli.journal_flags import journal_options
from fanwise.cli.limit_flags import limit_options, make_limiter
from fanwise.limits import Limiter
from fanwise.models import OfflineModel, OfflineSettings, choose_provider
from fanwise.models.base import Model
from fanwise.plans import REASONING_EFFORTS
from fanwise.workflow import ModelSettings

F = TypeVar("F", bound=Callable[..., Any])


class InputError(click.ClickException):
    """Bad input from the user: a clean one-line message and exit code 2, never a traceback."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"fanwise: error: {self.format_message()}", err=True)


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


def common_options(command: F) -> F:
    """Attach the shared flags; each command receives them as one ``RunOptions``."""
    options = [
        click.option(
            "--model",
            "-m",
            envvar="FANWISE_MODEL",
            help="Model name [default: gpt-5, or the plan's].",
        ),
        click.option(
            "--provider",
            type=click.Choice(["auto", "openai", "offline"]),
            default="auto",
            show_default=True,
            help="auto: OpenAI when OPENAI_API_KEY is set, else the built-in offline model.",
        ),
        click.option(
            "--base-url",
            envvar="OPENAI_BASE_URL",
            help="Any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (vLLM, Ollama...).",
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
            "official openai SDK. Same requests, same error kinds.",
        ),
        click.option(
            "--reasoning-effort",
            type=click.Choice([*REASONING_EFFORTS, "unset"]),
            help="Reasoning effort [default: minimal, or the plan's]; unset sends none.",
        ),
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
            type=click.FloatRange(min=0, min_open=True),
            help="Seconds each attempt of a call may take; a slower one is retried.",
        ),
        click.option(
            "--deadline",
            type=click.FloatRange(min=0, min_open=True),
            help="Seconds the whole research phase may take; unfinished calls count as timeouts.",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=0),
            default=3,
            show_default=True,
            help="Retries per call for retryable errors (429, 5xx, timeouts, drops).",
        ),
        click.option(
            "--mode",
            type=click.Choice(["settled", "all"]),
            default="settled",
            show_default=True,
            help="settled: keep every answer (allSettled); all: abort on the first failure.",
        ),
        click.option(
            "--min-answers",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Synthesize only when at least this many answers arrived.",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="Print one JSON document instead of Markdown."
        ),
        click.option(
            "--out",
            "-o",
            type=click.Path(dir_okay=False, writable=True),
            help="Write the result here, not to stdout.",
        ),
        click.option(
            "--quiet", is_flag=True, help="No progress lines on stderr; errors still show."
        ),
        click.option(
            "--plain",
            is_flag=True,
            help="Plain progress lines on stderr, even on a terminal (no live view).",
        ),
        click.option(
            "--stream/--no-stream",
            default=True,
            show_default=True,
            help="Print the synthesis as it is written; --no-stream prints it once complete.",
        ),
        click.option(
            "--report",
            type=click.Path(dir_okay=False, writable=True),
            metavar="FILE.html",
            help="Also write a self-contained HTML report: timeline of every call, answers, stats.",
        ),
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
            type=click.FloatRange(0, 1),
            default=0.0,
            show_default=True,
            help="Offline model: chance that an attempt fails (429, 500 or 400).",
        ),
        *journal_options(),
        *limit_options(),
        *engine_options(),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Every shared flag, resolved."""

    model: str | None
    provider: str
    base_url: str | None
    api: str
    reasoning_effort: str | None
    concurrency: int
    timeout: float | None
    deadline: float | None
    retries: int
    mode: str
    min_answers: int
    as_json: bool
    out: str | None
    quiet: bool
    plain: bool
    stream: bool
    report: str | None
    seed: int
    offline_latency: tuple[float, float]
    offline_fail_rate: float
    journal: str | None = None
    no_journal: bool = False
    journal_content: str = "full"
    cache: bool = False
    max_cost: float | None = None
    prices: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    retry_budget: int | None = None
    adapt: bool = True
    transport: str = "aiohttp"
    engine: str = "live"
    endpoints: tuple[str, ...] = ()
    retry_with: str = "batch"
    batch_poll: float = 60.0
    workers: int = 2
    ray_address: str | None = None

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> RunOptions:
        names = cls.__dataclass_fields__
        return cls(**{name: kwargs.pop(name) for name in list(names)})

    def settings(self, plan_model: Mapping[str, Any] | None = None) -> ModelSettings:
        """Flags win over the plan's [model] table, which wins over the defaults."""
        plan_model = plan_model or {}
        effort = self.reasoning_effort or plan_model.get("reasoning_effort", "minimal")
        return ModelSettings(
            model=self.model or plan_model.get("model", "gpt-5"),
            reasoning_effort=None if effort == "unset" else effort,
            max_output_tokens=plan_model.get("max_output_tokens"),
            temperature=plan_model.get("temperature"),
        )

    def build_limiter(self, environ: Mapping[str, str] = os.environ) -> Limiter:
        """--rpm/--tpm buckets; for OpenAI also the adaptive limits, unless --no-adapt."""
        provider = choose_provider(self.provider, environ)
        return make_limiter(rpm=self.rpm, tpm=self.tpm, adapt=self.adapt, provider=provider)

    def build_model(self, environ: Mapping[str, str] = os.environ) -> Model:
        provider = choose_provider(self.provider, environ)
        check_engine(self, provider)
        if self.endpoints:  # a pool of endpoints, each with its own limits (docs/scaling.md)
            from fanwise.cli.engines import endpoint_pool

            return endpoint_pool(self, environ)
        if provider == "offline":
            if self.provider == "auto" and not self.quiet:
                click.echo(
                    "fanwise: OPENAI_API_KEY is not set, so this runs on the built-in offline "
                    "model: its answers are generated locally, not by an LLM. Set the key (or "
                    "--provider openai) to use OpenAI.",
                    err=True,
                )
            settings = OfflineSettings(self.seed, self.offline_latency, self.offline_fail_rate)
            return OfflineModel(settings)
        key = environ.get("OPENAI_API_KEY")
        if not key and not self.base_url:
            raise InputError(
                "--provider openai needs an API key: set OPENAI_API_KEY "
                "(or use --base-url for a local OpenAI-compatible server)"
            )
        # docs/benchmarks.md: the SDK costs ~10x the CPU; --engine batch needs its files/batches
        if self.transport == "aiohttp" and self.engine != "batch":
            from fanwise.models.fast import FastOpenAIModel

            return FastOpenAIModel(
                api_key=key or "not-needed",
                base_url=self.base_url,
                api=self.api,  # type: ignore[arg-type]
            )
        from fanwise.models.openai import OpenAIModel  # the SDK loads only when it is used

        return OpenAIModel(api_key=key or "not-needed", base_url=self.base_url, api=self.api)  # type: ignore[arg-type]
