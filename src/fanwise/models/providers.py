"""Which provider a run speaks to, and the model for each: one place decides.

``auto`` reads the environment: a model name that implies its provider (``claude-*`` is
Anthropic's, ``gemini-*`` Google's) picks it; otherwise the first provider whose key is set,
in the order OpenAI, Anthropic, Gemini; the offline model when no key is set at all. Each
provider has its own default model and endpoint: Anthropic speaks the Messages API, Gemini's
OpenAI-compatible endpoint speaks Chat Completions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from fanwise.models.base import Endpoint, Model

Provider = Literal["openai", "anthropic", "gemini", "offline"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "gemini", "offline")

KEYS: Mapping[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}
"""The environment variables that hold each provider's key, the first found wins."""

DEFAULT_MODELS: Mapping[str, str] = {
    "openai": "gpt-5",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
    "offline": "gpt-5",
}
_PREFIXES: Mapping[str, Provider] = {"claude-": "anthropic", "gemini-": "gemini"}


def implied_provider(model: str | None) -> Provider | None:
    """The provider a model name belongs to, where the name says so unambiguously."""
    for prefix, provider in _PREFIXES.items():
        if model and model.startswith(prefix):
            return provider
    return None


def key_for(provider: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The provider's API key from the environment, if set."""
    for variable in KEYS.get(provider, ()):
        if environ.get(variable):
            return environ[variable]
    return None


def keyed_providers(environ: Mapping[str, str] = os.environ) -> list[Provider]:
    """The providers whose key is set, in the order ``auto`` prefers them."""
    return [p for p in PROVIDERS if p != "offline" and key_for(p, environ)]


def choose_provider(
    requested: str | None,
    environ: Mapping[str, str] = os.environ,
    model: str | None = None,
    *,
    base_url: str | None = None,
) -> Provider:
    """An explicit provider as it is; ``auto`` from the model's name, then from the keys set,
    then OpenAI (an OpenAI-compatible server) when a base URL is given: local servers often
    need no key, and a base URL is never answered by the offline model."""
    if requested in PROVIDERS:
        return requested
    if requested not in (None, "", "auto"):
        raise ValueError(
            f"unknown provider {requested!r}: use openai, anthropic, gemini, offline or auto"
        )
    keyed = keyed_providers(environ)
    implied = implied_provider(model)
    served = bool(base_url or environ.get("OPENAI_BASE_URL"))
    if implied is not None and (keyed or served):
        return implied  # without its key, the model's builder says which key to set
    if keyed:
        return keyed[0]
    return "openai" if served else "offline"


def endpoint_for(provider: str, api: str) -> Endpoint:
    """The endpoint prompt-style requests go to: Anthropic's Messages, Gemini's Chat."""
    if provider == "anthropic":
        return Endpoint.MESSAGES
    if provider == "gemini":  # the compatible endpoint, unless Gemini's own API is asked for
        return Endpoint.GENERATE if api == "generateContent" else Endpoint.CHAT
    return Endpoint.parse(api)


def provider_model(
    provider: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    transport: str = "aiohttp",
    environ: Mapping[str, str] = os.environ,
) -> Model:
    """The model for Anthropic or Gemini; ``ValueError`` says which key to set."""
    key = api_key or key_for(provider, environ)
    if not key and not base_url:
        names = " or ".join(KEYS[provider])
        raise ValueError(f"the {provider} provider needs an API key: set {names}")
    if provider == "anthropic":
        if transport == "sdk":  # the SDK loads only when it is used
            from fanwise.models.anthropic_sdk import AnthropicSdkModel

            return AnthropicSdkModel(
                api_key=key or "not-needed", base_url=base_url, environ=environ
            )
        from fanwise.models.anthropic import AnthropicModel

        return AnthropicModel(api_key=key or "not-needed", base_url=base_url, environ=environ)
    if provider == "gemini":
        from fanwise.models.gemini import GeminiModel

        return GeminiModel(
            api_key=key or "not-needed", base_url=base_url, transport=transport, environ=environ
        )
    raise ValueError(f"no model builder for provider {provider!r}")


__all__ = [
    "DEFAULT_MODELS",
    "KEYS",
    "PROVIDERS",
    "Provider",
    "choose_provider",
    "endpoint_for",
    "implied_provider",
    "key_for",
    "keyed_providers",
    "provider_model",
]
