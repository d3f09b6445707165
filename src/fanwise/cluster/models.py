"""Model factories a worker can be sent: picklable values that build the model in the worker,
through the library's one factory (``get_model``; a run's workers use ``cluster.setup``'s
``ConfigModels``, which takes every provider; these two are for code that builds a plan by
hand).

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
        from fanwise.factory import get_model  # the library's one factory, in the worker

        return get_model(
            "openai",
            base_url=url or self.base_url,
            api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
            api=self.api,  # type: ignore[arg-type]
            transport=self.transport,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class OfflineModels:
    """The built-in offline model, whatever the URL."""

    settings: OfflineSettings = field(default_factory=OfflineSettings)

    def __call__(self, url: str | None) -> Model:
        return OfflineModel(self.settings)


__all__ = ["OfflineModels", "OpenAIModels"]
