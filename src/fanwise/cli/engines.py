"""The flags made into the library's ``RunConfig``, and its errors and notes in the CLI's words.

Wiring only: ``fanwise.config`` decides the provider, the model, the limits, the engine and its
dispatch (live, the Batch API, Ray), for the Python API and a resume as for the CLI; this module
hands the flags over and names the flag that fixes a setting the library refuses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from fanwise.cli.errors import InputError
from fanwise.cli.options import RunOptions
from fanwise.cli.session import check_journal_flags, config_error
from fanwise.config import RunConfig
from fanwise.config.open import run_settings
from fanwise.factory import ConfigError
from fanwise.models.providers import keyed_providers
from fanwise.models.settings import ModelSettings

OFFLINE_NOTE = (
    "fanwise: OPENAI_API_KEY is not set, so this runs on the built-in offline model: its answers "
    "are generated locally, not by an LLM. Set the key (or --provider openai) to use OpenAI."
)


def run_config(
    options: RunOptions,
    environ: Mapping[str, str] = os.environ,
    *,
    endpoints: Sequence[str] = (),
) -> RunConfig:
    """The run's config from the flags (``endpoints``: a plan's, when --endpoints gives none),
    every refusal said before any request, with the flag that fixes it (exit code 2)."""
    check_journal_flags(options, environ)
    if options.prices and not Path(options.prices).is_file():
        raise InputError(f"--prices {options.prices}: no such file")
    engine = f"--engine {options.engine}"
    if options.engine in ("batch", "auto") and options.mode == "all":
        raise InputError(f"{engine} cannot stop at the first failure: use --mode settled")
    if options.engine == "auto" and options.deadline is None and options.deadline_at is None:
        raise InputError("--engine auto needs --deadline (e.g. --deadline 2h or 07:00)")
    if options.plan_only and options.engine != "auto":
        raise InputError("--plan-only: the plan is --engine auto's: add --engine auto --deadline")
    try:
        config = RunConfig.from_values(
            provider=options.provider,
            environ=environ,
            seed=options.seed,
            offline_latency=options.offline_latency,
            offline_fail_rate=options.offline_fail_rate,
            **config_values(options, endpoints),
        )
        if config.engine == "ray":  # said now, not when the run's engine is built
            from fanwise.cluster import RayMissing, import_ray

            try:
                import_ray()
            except RayMissing as exc:
                raise ConfigError("engine", str(exc)) from None
    except ConfigError as exc:
        raise config_error(exc) from None
    return config


def config_values(options: RunOptions, endpoints: Sequence[str] = ()) -> dict[str, Any]:
    """The flags that are the run's config, by the config's names."""
    return {
        "model": options.model,
        "reasoning_effort": options.reasoning_effort,
        "base_url": options.base_url,
        "api": options.api,
        "transport": options.transport,
        "endpoints": tuple(options.endpoints or endpoints),
        "engine": options.engine,
        "concurrency": options.concurrency,
        "timeout": options.timeout,
        "deadline": options.deadline,
        "retries": options.retries,
        "retry_budget": options.retry_budget,
        "max_wait": options.max_wait,
        "rpm": options.rpm,
        "tpm": options.tpm,
        "adapt": options.adapt,
        "repair": options.repair,
        "max_output_tokens": options.max_output_tokens,
        "on_journal_error": options.on_journal_error,
        "max_cost": options.max_cost,
        "prices": options.prices,
        "price": options.price,
        "journal": not options.no_journal,
        "journal_path": options.journal,
        "journal_content": options.journal_content,
        "cache": options.cache,
        "batch_poll": options.batch_poll,
        "retry_with": options.retry_with,
        "workers": options.workers,
        "ray_address": options.ray_address,
        "live_latency": options.live_latency,
        "deadline_at": options.deadline_at,
    }


def announce(
    options: RunOptions, config: RunConfig, environ: Mapping[str, str] = os.environ
) -> None:
    """Say which provider ``auto`` chose when it is not obvious: the offline model, or one of
    several keyed providers."""
    if options.provider != "auto" or options.quiet:
        return
    if config.provider == "offline":
        click.echo(OFFLINE_NOTE, err=True)
    keyed = keyed_providers(environ)
    if len(keyed) > 1:
        click.echo(
            f"fanwise: keys are set for {', '.join(keyed)}: using {config.provider} "
            "(choose with --provider)",
            err=True,
        )


def model_settings(config: RunConfig, plan_model: Mapping[str, Any] | None = None) -> ModelSettings:
    """--model, --reasoning-effort and --max-output-tokens over the plan's [model] table, over
    the defaults (``fanwise.config.open.run_settings``)."""
    return run_settings(config, plan_model)


__all__ = ["announce", "config_error", "config_values", "model_settings", "run_config"]
