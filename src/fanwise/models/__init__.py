"""Models fanwise can call, and the one place that picks one from the settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from fanwise.models.base import Completion, Model, Request, Usage
from fanwise.models.offline import OfflineModel, OfflineSettings

Provider = Literal["openai", "offline"]


def choose_provider(
    requested: str | None,
    environ: Mapping[str, str] = os.environ,
    *,
    base_url: str | None = None,
) -> Provider:
    """OpenAI (or the OpenAI-compatible server at a base URL) when a key or a base URL is given,
    the offline model otherwise; an explicit choice wins. A base URL is never answered by the
    offline model: local servers often need no key (``models.compat.resolve_api_key``)."""
    if requested in ("openai", "offline"):
        return requested  # type: ignore[return-value]  # narrowed by the membership test
    if requested not in (None, "", "auto"):
        raise ValueError(f"unknown provider {requested!r}: use openai, offline or auto")
    if environ.get("OPENAI_API_KEY") or base_url or environ.get("OPENAI_BASE_URL"):
        return "openai"
    return "offline"


__all__ = [
    "Completion",
    "Model",
    "OfflineModel",
    "OfflineSettings",
    "Provider",
    "Request",
    "Usage",
    "choose_provider",
]
