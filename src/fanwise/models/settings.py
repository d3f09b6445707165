"""The settings every call of a run shares, and the one decision of each model's endpoint.

``ModelSettings.for_model`` is where a model's name picks its provider's endpoint (a ``claude-*``
model: Anthropic's Messages API; ``gemini-*``: Chat Completions, with no ``minimal`` effort).
Every request a workflow builds (a research question asked of several models, a stage with its
own ``model``, a vote's ``models``) goes through it, so the decision is made once, here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fanwise.models.base import DEFAULT_MODEL, Endpoint, Request
from fanwise.models.providers import endpoint_for, implied_provider


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Model settings shared by every call of a workflow."""

    model: str = DEFAULT_MODEL
    reasoning_effort: str | None = "minimal"
    max_output_tokens: int | None = None
    temperature: float | None = None
    endpoint: Endpoint = Endpoint.RESPONSES
    chat_cap: str = "max_completion_tokens"  # where a Chat body's cap goes: requests.CHAT_CAPS

    def __post_init__(self) -> None:
        endpoint: object = self.endpoint  # a journaled spec holds its name
        if not isinstance(endpoint, Endpoint):
            object.__setattr__(self, "endpoint", Endpoint.parse(str(endpoint)))

    def for_model(self, model: str) -> ModelSettings:
        """These settings for ``model``, on the endpoint its provider speaks (a ``claude-*``
        model: Anthropic's messages; ``gemini-*``: Chat Completions, with no ``minimal``)."""
        if model == self.model:
            return self
        provider = implied_provider(model)
        endpoint = self.endpoint if provider is None else endpoint_for(provider, self.endpoint)
        effort, cap = self.reasoning_effort, self.chat_cap
        if provider == "gemini":
            effort, cap = (None if effort == "minimal" else effort), "both"
        return dataclasses.replace(
            self, model=model, endpoint=endpoint, reasoning_effort=effort, chat_cap=cap
        )

    def request(
        self,
        prompt: str,
        instructions: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        context: str | None = None,
        cache_ttl: str | None = None,
    ) -> Request:
        """A prompt-style request with these settings; ``extra`` body fields are added and
        ``context`` (shared by many calls) goes before the prompt, marked for caching."""
        return Request.text(
            prompt,
            model=self.model,
            instructions=instructions,
            reasoning_effort=self.reasoning_effort,
            max_output_tokens=self.max_output_tokens,
            temperature=self.temperature,
            endpoint=self.endpoint,
            extra=extra,
            context=context,
            cache_ttl=cache_ttl,
            chat_cap=self.chat_cap,
        )


__all__ = ["ModelSettings"]
