"""Which model, limiter and settings a run uses: the one place that decides, for Python and the CLI.

``get_model`` resolves the provider (``models/providers.py``: the provider a ``claude-*`` or
``gemini-*`` model names, else the first of OpenAI, Anthropic and Gemini whose key is set, else
the built-in offline model), the transport (fanwise's lean aiohttp client by default, the
official SDK on request), the base URL, the key, and a pool when several endpoints are given.
The ``fanwise`` command calls these same functions with its flags; nothing here knows about
flags or terminals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any, Literal

from fanwise.endpoints import Endpoint, EndpointPool
from fanwise.limits import Limiter, build_limiter
from fanwise.models import Provider, choose_provider
from fanwise.models.base import DEFAULT_MODEL, Model
from fanwise.models.offline import OfflineModel, OfflineSettings
from fanwise.models.providers import DEFAULT_MODELS, endpoint_for, provider_model
from fanwise.models.settings import ModelSettings
from fanwise.outcome import FanwiseError

Api = Literal["responses", "chat"]
Transport = Literal["aiohttp", "sdk"]

OFFLINE_NOTE = (
    "OPENAI_API_KEY is not set, so this runs on the built-in offline model: its answers are "
    "generated locally, not by an LLM. Set the key to use OpenAI."
)


class ConfigError(FanwiseError, ValueError):
    """A setting that cannot work; ``setting`` names it (the CLI names the flag that sets it)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


class OfflineModelWarning(UserWarning):
    """No API key was found, so the answers come from the offline model, not from an LLM."""


_OWN_FILES = (
    os.path.dirname(__file__) + os.sep,  # fanwise
    os.path.dirname(asyncio.__file__) + os.sep,
    contextlib.__file__,
)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside fanwise, asyncio and contextlib, for a
    warning issued by our caller: ``research()`` reaches ``get_model`` through ``asyncio.run``
    and an async context manager, so no fixed level names the user's line. (Python 3.12's
    ``skip_file_prefixes`` does this; 3.11 has not got it.)"""
    frame: FrameType | None = sys._getframe(1)  # the one that calls warnings.warn: level 1
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_OWN_FILES):
        frame, level = frame.f_back, level + 1
    return level


def resolve_provider(
    provider: str = "auto",
    environ: Mapping[str, str] = os.environ,
    model: str | None = None,
    *,
    base_url: str | None = None,
) -> Provider:
    """``auto`` becomes the provider ``model`` names, else the first whose key is set, else
    ``openai`` when a base URL is given (a server to ask: local ones often need no key, never
    the offline model), else ``offline``."""
    try:
        return choose_provider(provider, environ, model, base_url=base_url)
    except ValueError as exc:
        raise ConfigError("provider", str(exc)) from None


def check_base_url(base_url: str | None) -> None:
    """A base URL the HTTP clients can use: http:// or https://. Checked before any request
    (``127.0.0.1:8000/v1`` without a scheme used to cost nine network retries per call)."""
    if base_url and not base_url.startswith(("http://", "https://")):
        raise ConfigError(
            "base_url",
            f"{base_url!r} must be an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1",
        )


def get_limiter(
    provider: str = "auto",
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    adapt: bool = True,
    environ: Mapping[str, str] = os.environ,
) -> Limiter:
    """Client-side buckets as asked; the adaptive limits for every real provider: paced by
    OpenAI's ``x-ratelimit-*`` and Anthropic's ``anthropic-ratelimit-*`` headers, and a rate
    learned from the 429s of Gemini's endpoint, which sends none (not for the offline model)."""
    adaptive = adapt and resolve_provider(provider, environ) != "offline"
    return build_limiter(rpm=rpm, tpm=tpm, adaptive=adaptive)


def get_model(
    provider: str = "auto",
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    api: Api = "responses",
    transport: Transport = "aiohttp",
    endpoints: Sequence[str] = (),
    limiter: Callable[[], Limiter] | None = None,
    offline: OfflineSettings | None = None,
    environ: Mapping[str, str] = os.environ,
    model: str | None = None,
) -> Model:
    """The model a run calls. Close it with ``await model.aclose()`` or ``async with``.

    ``endpoints`` spreads the calls over several OpenAI-compatible servers, each under its own
    limiter (``limiter()`` makes one; by default ``get_limiter(provider)``): pass the returned
    pool to the engine as its limiter too. With ``provider="auto"`` and no key, this warns
    (``OfflineModelWarning``) that the answers are the offline model's. A model sends each
    request to the endpoint the request names; ``api`` (where prompt-style requests go) is
    ``get_settings``'s to apply, and is accepted here so that callers can pass both the same.
    """
    check_base_url(base_url)
    server = base_url or next(iter(endpoints), None)
    # a claude-* model names Anthropic; a server with no key is an OpenAI-compatible one
    resolved = resolve_provider(provider, environ, model, base_url=server)
    if resolved == "offline" and provider in (None, "", "auto"):
        warnings.warn(OFFLINE_NOTE, OfflineModelWarning, stacklevel=_caller_stacklevel())
    if endpoints:
        make_limiter = limiter or (lambda: get_limiter(resolved, environ=environ))
        one: dict[str, Any] = {"api_key": api_key, "api": api, "transport": transport}
        return EndpointPool(
            [
                Endpoint(
                    url,
                    get_model(resolved, base_url=url, offline=offline, environ=environ, **one),
                    make_limiter(),
                )
                for url in endpoints
            ]
        )
    if resolved == "offline":
        return OfflineModel(offline)
    if resolved in ("anthropic", "gemini"):
        try:
            return provider_model(
                resolved, api_key=api_key, base_url=base_url, transport=transport, environ=environ
            )
        except ValueError as exc:
            raise ConfigError("provider", str(exc)) from None
    key = api_key or environ.get("OPENAI_API_KEY")
    base_url = base_url or env_base_url("openai", environ)
    if not key and not base_url:
        raise ConfigError(
            "api_key",
            "the openai provider needs an API key: set OPENAI_API_KEY (or give the base URL of "
            "a local OpenAI-compatible server)",
        )
    if transport == "aiohttp":  # docs/benchmarks.md: the SDK costs ~10x the CPU per call
        from fanwise.models.fast import FastOpenAIModel

        return FastOpenAIModel(api_key=key or "not-needed", base_url=base_url)
    if transport == "sdk":
        from fanwise.models.openai import OpenAIModel  # the SDK loads only when it is used

        return OpenAIModel(api_key=key or "not-needed", base_url=base_url)
    raise ConfigError("transport", f"unknown transport {transport!r}: use aiohttp or sdk")


BASE_URL_VARS = {
    "openai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "gemini": "GEMINI_BASE_URL",
}


def env_base_url(provider: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The provider's own base URL variable, as its SDK reads it: ``OPENAI_BASE_URL`` never
    sends an Anthropic or Gemini key to an OpenAI-compatible server."""
    name = BASE_URL_VARS.get(provider)
    return (environ.get(name) or None) if name else None


def endpoint_label(
    provider: str, *, api: str = "responses", base_url: str | None = None, seed: int = 0
) -> str:
    """Who answers, as the journal keys it: the cache reuses answers from the same endpoint only."""
    if provider == "offline":
        return f"offline/seed={seed}"
    if provider != "openai":
        return f"{provider}@{base_url or 'default'}"
    return f"openai/{api}@{base_url or 'https://api.openai.com/v1'}"


def get_settings(
    model: str | None = None,
    reasoning_effort: str | None = None,
    plan_model: Mapping[str, Any] | None = None,
    api: str = "responses",
    provider: str = "openai",
    *,
    max_output_tokens: int | None = None,
    base_url: str | None = None,
) -> ModelSettings:
    """What every call of a run asks with: the arguments win over a plan's ``[model]`` table,
    which wins over the defaults. ``reasoning_effort="unset"`` sends none. ``api`` is the
    endpoint a prompt-style request goes to (a ``Request`` names its own); ``provider`` (a
    resolved one) decides the default model, and the endpoint when it speaks only one
    (Anthropic's messages, Gemini's Chat Completions). ``base_url`` (an OpenAI-compatible
    server's) says where a Chat body's output cap goes: ``max_tokens``, which such servers
    honour, not OpenAI's ``max_completion_tokens``."""
    plan_model = plan_model or {}
    # Gemini's 2.5 models take no "minimal": without a choice, send none.
    default_effort = "unset" if provider == "gemini" else "minimal"
    effort = reasoning_effort or plan_model.get("reasoning_effort", default_effort)
    default_model = DEFAULT_MODELS.get(provider, DEFAULT_MODEL)
    return ModelSettings(
        model=model or plan_model.get("model", default_model),
        reasoning_effort=None if effort == "unset" else effort,
        max_output_tokens=max_output_tokens or plan_model.get("max_output_tokens"),
        temperature=plan_model.get("temperature"),
        endpoint=endpoint_for(provider, api),
        chat_cap=chat_cap(provider, base_url),
    )


def chat_cap(provider: str, base_url: str | None) -> str:
    """The field(s) a Chat body's output cap goes in (``models.requests.CHAT_CAPS``)."""
    if provider == "gemini":
        return "both"
    return "max_tokens" if provider == "openai" and base_url else "max_completion_tokens"


__all__ = [
    "OFFLINE_NOTE",
    "Api",
    "ConfigError",
    "OfflineModelWarning",
    "Transport",
    "check_base_url",
    "endpoint_label",
    "env_base_url",
    "get_limiter",
    "get_model",
    "get_settings",
    "resolve_provider",
]
