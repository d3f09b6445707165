"""Model factories a worker can be sent: picklable values that build the model in the worker.

The API key is never part of them: a worker reads ``OPENAI_API_KEY`` from its own environment
(``ray.init(runtime_env={"env_vars": ...})`` puts it there), so it is not pickled, stored in
Ray's object store or written in its logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from fanwise.models.base import Model
from fanwise.models.offline import OfflineModel, OfflineSettings


@dataclass(frozen=True, slots=True)
class OpenAIModels:
    """An OpenAI-compatible model for each endpoint URL (``None``: ``base_url``), spoken to
    with ``transport`` (``aiohttp``, fanwise's lean client, or ``sdk``, the official one)."""

    base_url: str | None = None
    api: str = "responses"
    transport: str = "aiohttp"

    def __call__(self, url: str | None) -> Model:
        if self.transport not in ("aiohttp", "sdk"):  # in the worker: an error of the run, once
            raise ValueError(f"transport must be aiohttp or sdk, got {self.transport!r}")
        key = os.environ.get("OPENAI_API_KEY") or "not-needed"
        if self.transport == "aiohttp":
            from fanwise.models.fast import FastOpenAIModel

            return FastOpenAIModel(api_key=key, base_url=url or self.base_url)
        from fanwise.models.openai import OpenAIModel

        return OpenAIModel(api_key=key, base_url=url or self.base_url)


@dataclass(frozen=True, slots=True)
class OfflineModels:
    """The built-in offline model, whatever the URL."""

    settings: OfflineSettings = field(default_factory=OfflineSettings)

    def __call__(self, url: str | None) -> Model:
        return OfflineModel(self.settings)


__all__ = ["OfflineModels", "OpenAIModels"]
