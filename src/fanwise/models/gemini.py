"""Gemini through Google's OpenAI-compatible endpoint, and its own API: ``--provider gemini``.

Chat Completions requests go to the compatible endpoint; ``generateContent`` and
``embedContent`` requests (``Endpoint.GENERATE``, ``EMBED_CONTENT``) to Gemini's own API at the
same root without ``/openai`` (``models/gemini_native.py``).

The endpoint speaks Chat Completions, so the OpenAI transports carry it (aiohttp by default,
the SDK with ``--transport sdk``), with ``GEMINI_API_KEY`` as the bearer key and
``https://generativelanguage.googleapis.com/v1beta/openai`` as the base URL. Bodies go
unchanged, so Gemini-only options ride in the body as Google documents them (an
``extra_body: {"google": {...}}`` field, ``reasoning_effort``).

Its quirks are read here, from the error body that both transports keep:

- a 429 says how long to wait only in the body, as ``RetryInfo.retryDelay`` (``"45.8s"``);
  ``models.compat`` reads it for every transport (``retry_delay``), and it becomes the error's
  ``retry_after``, honoured exactly like a ``Retry-After`` header;
- a 429 for a per-day quota (a ``QuotaFailure`` whose ``quotaId`` says ``PerDay``) will not
  clear by waiting: it is a final ``auth`` error, as OpenAI's ``insufficient_quota`` is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from fanwise.models.base import Completion, DeltaSink, ExplicitCache, Model, Request
from fanwise.models.compat import retry_delay
from fanwise.outcome import AuthError, CallError, RateLimited, ServerError

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta/openai"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"


class GeminiModel(Model):
    """Gemini's OpenAI-compatible endpoint, with its 429s read from the body."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        transport: str = "aiohttp",
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        key = api_key or environ.get("GEMINI_API_KEY") or environ.get("GOOGLE_API_KEY")
        if not key:
            raise ValueError("an API key is needed: pass api_key or set GEMINI_API_KEY")
        self.base_url = base_url or environ.get("GEMINI_BASE_URL") or DEFAULT_BASE_URL
        self.inner: Model
        if transport == "sdk":
            from fanwise.models.openai import OpenAIModel

            self.inner = OpenAIModel(api_key=key, base_url=self.base_url)
        else:
            from fanwise.models.fast import FastOpenAIModel

            # No environ: OPENAI_ORG_ID and OPENAI_PROJECT_ID are not Google's to see.
            self.inner = FastOpenAIModel(api_key=key, base_url=self.base_url, environ={})
        from fanwise.models.gemini_native import GeminiNative, native_root

        self.native = GeminiNative(api_key=key, root=native_root(self.base_url))
        """Gemini's own API, for ``generateContent`` and ``embedContent`` requests."""

    @property
    def name(self) -> str:
        return "gemini"

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        try:
            if request.endpoint.native:
                return await self.native.complete(request, on_delta)
            return await self.inner.complete(request, on_delta=on_delta)
        except (RateLimited, ServerError) as exc:
            raise gemini_error(exc) from exc.__cause__

    async def cache_context(
        self, model: str, system: str | None, context: str, ttl: float
    ) -> ExplicitCache:
        """An explicit context cache (Gemini's ``cachedContents``) of ``context``, for a large
        fan-out over it; ``drop_cache`` it when done (storage is billed by the hour)."""
        created = await self.native.create_cache(model, system, context, ttl)
        usage = created.get("usageMetadata")
        size = usage.get("totalTokenCount") if isinstance(usage, dict) else None
        return ExplicitCache(str(created["name"]), model, int(size or 0))

    async def drop_cache(self, cache: ExplicitCache) -> None:
        await self.native.delete_cache(cache.name)

    async def aclose(self) -> None:
        await self.inner.aclose()
        await self.native.aclose()


def gemini_error(error: CallError) -> CallError:
    """``error`` with what Gemini's body says: a per-day quota is final, a delay is kept."""
    body = _parsed(error.body)
    if error.status_code == 429 and per_day(body):
        return AuthError(
            f"{error.message} (a per-day quota is spent: it resets tomorrow, or raise it)",
            status_code=429,
            code="per_day_quota",
            body=error.body,
        )
    delay = retry_delay(body)
    if delay is None or error.retry_after is not None:
        return error
    return type(error)(
        error.message,
        status_code=error.status_code,
        retry_after=delay,
        code=error.code,
        headers=error.headers,
        body=error.body,
    )


def per_day(body: Any) -> bool:
    """Whether a ``QuotaFailure`` in the body names a per-day quota."""
    for detail in _details(body):
        if detail.get("@type") != QUOTA_FAILURE:
            continue
        for violation in detail.get("violations") or []:
            quota = str(violation.get("quotaId", "")) if isinstance(violation, dict) else ""
            if "PerDay" in quota:
                return True
    return False


def _details(body: Any) -> Iterator[dict[str, Any]]:
    """The ``details`` of a Google error body, bare or in the list the compatible API sends."""
    for item in body if isinstance(body, list) else [body]:
        error = item.get("error", item) if isinstance(item, dict) else None
        details = error.get("details") if isinstance(error, dict) else None
        for detail in details if isinstance(details, list) else []:
            if isinstance(detail, dict):
                yield detail


def _parsed(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


__all__ = ["DEFAULT_BASE_URL", "GeminiModel", "gemini_error", "per_day"]
