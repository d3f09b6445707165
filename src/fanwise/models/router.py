"""Several providers in one run: each request goes to the provider its model names.

A plan may ask one question of ``claude-sonnet-4-5`` and another of ``gpt-5``, or one question
of several models at once. ``ProviderRouter`` is the run's model: it sends each request to the
provider its model implies (``claude-*`` Anthropic, ``gemini-*`` Gemini, any other the run's
own provider), making each provider's model on first use. Each provider keeps its own limits:
the router takes that provider's permit around the request and records its usage and headers
there, so Anthropic's headers never pace OpenAI's calls. It is the engine's limiter too, a free
one, for the same reason: the engine's own limiter would mix every provider's headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fanwise.limits import Limiter, Permit, Unlimited, request_tokens
from fanwise.models.base import Completion, DeltaSink, Model, Request
from fanwise.models.providers import implied_provider


class ProviderRouter(Model):
    """A ``Model`` (and a free ``Limiter``) that sends each request to its model's provider."""

    def __init__(
        self,
        default: str,
        make_model: Callable[[str], Model],
        make_limiter: Callable[[str], Limiter],
    ) -> None:
        self.default = default
        self.make_model = make_model
        self.make_limiter = make_limiter
        self.models: dict[str, Model] = {}
        self.limiters: dict[str, Limiter] = {}

    @property
    def name(self) -> str:
        return self.default

    def provider_of(self, request: Request) -> str:
        """The provider a request goes to: its model's, else the run's."""
        return implied_provider(request.model) or self.default

    def model_for(self, provider: str) -> Model:
        if provider not in self.models:
            self.models[provider] = self.make_model(provider)
            self.limiters[provider] = self.make_limiter(provider)
        return self.models[provider]

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        provider = self.provider_of(request)
        model = self.model_for(provider)
        async with self.limiters[provider].permit(request_tokens(request)) as permit:
            completion = await model.complete(request, on_delta=on_delta)
            permit.record(tokens=completion.usage.total_tokens, headers=completion.headers)
        return completion

    @asynccontextmanager
    async def permit(self, estimated_tokens: int) -> AsyncIterator[Permit]:
        """The engine's permit: free; each provider's own is taken in ``complete``."""
        async with Unlimited().permit(estimated_tokens) as permit:
            yield permit

    async def aclose(self) -> None:
        for model in self.models.values():
            await model.aclose()

    def __repr__(self) -> str:
        return f"ProviderRouter(default={self.default!r}, providers={sorted(self.models)})"


__all__ = ["ProviderRouter"]
