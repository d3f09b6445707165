"""Gemini's explicit context caches: ``/v1beta/cachedContents``, created, used and deleted.

``POST /v1beta/cachedContents`` takes a ``CachedContent`` (``model``, ``systemInstruction``,
``contents``, ``ttl``) and answers with its ``name`` (``cachedContents/...``), ``expireTime``
and ``usageMetadata.totalTokenCount``; ``GET`` and ``DELETE /v1beta/{name}`` read and remove
it. A request that names one (``cachedContent`` in a native body, or
``extra_body.google.cached_content`` on the OpenAI-compatible endpoint) is answered as if its
cached text came first, and reports those tokens as cached. ``stats()`` counts the token-seconds
each cache was held, the figure Google bills storage by.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fanwise.simulator import bodies
from fanwise.simulator.prompt_cache import tokens

PREFIX = "/v1beta/cachedContents"


@dataclass
class _Cache:
    name: str
    model: str
    text: str
    tokens: int
    created: float
    expires: float


@dataclass
class CacheStats:
    created: int = 0
    deleted: int = 0
    token_seconds: float = 0.0  # held (created to deleted or expired), as storage is billed


class CachedContents:
    """The caches one simulator holds, on its clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._caches: dict[str, _Cache] = {}
        self._stats = CacheStats()
        self._next = 0

    def stats(self) -> CacheStats:
        return CacheStats(self._stats.created, self._stats.deleted, self._stats.token_seconds)

    def lookup(self, name: str) -> _Cache | None:
        """The live cache called ``name`` (``cachedContents/...``), if any."""
        cache = self._caches.get(name)
        if cache is not None and cache.expires <= self.clock():
            self._drop(cache, cache.expires)
            return None
        return cache

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path == PREFIX and request.method == "POST":
            return self._create(await request.read())
        name = request.path.removeprefix("/v1beta/")
        cache = self.lookup(name)
        if cache is None:
            return _error(404, f"CachedContent not found (or expired): {name}", "NOT_FOUND")
        if request.method == "DELETE":
            self._drop(cache, self.clock())
            self._stats.deleted += 1
            return web.json_response({})
        if request.method == "GET":
            return web.json_response(self._resource(cache))
        return _error(405, f"{request.method} is not allowed here", "INVALID_ARGUMENT")

    def _create(self, raw: bytes) -> web.StreamResponse:
        try:
            data = json.loads(raw)
        except ValueError:
            return _error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
        model = data.get("model") if isinstance(data, dict) else None
        if not isinstance(model, str) or not model.startswith("models/"):
            return _error(400, "model: required, as models/{model}", "INVALID_ARGUMENT")
        text = "\n\n".join(filter(None, (_text(data.get("systemInstruction")), *map(
            _text, data.get("contents") or []))))  # fmt: skip
        size = tokens(text)
        if size < 1024:
            message = (
                f"Cached content is too small. total_token_count={size}, min_total_token_count=1024"
            )
            return _error(400, message, "INVALID_ARGUMENT")
        ttl = _seconds(data.get("ttl", "3600s"))
        self._next += 1
        now = self.clock()
        cache = _Cache(f"cachedContents/sim{self._next:08d}", model, text, size, now, now + ttl)
        self._caches[cache.name] = cache
        self._stats.created += 1
        return web.json_response(self._resource(cache))

    def _drop(self, cache: _Cache, until: float) -> None:
        self._caches.pop(cache.name, None)
        self._stats.token_seconds += cache.tokens * max(0.0, until - cache.created)

    def _resource(self, cache: _Cache) -> dict[str, Any]:
        wall = time.time() - self.clock()
        expire = datetime.fromtimestamp(cache.expires + wall, UTC)
        return {
            "name": cache.name,
            "model": cache.model,
            "expireTime": expire.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "usageMetadata": {"totalTokenCount": cache.tokens},
        }


def cached_name(body: dict[str, Any]) -> str | None:
    """The cache a request names: native ``cachedContent``, or the compatible endpoint's
    ``extra_body.google.cached_content``."""
    if isinstance(body.get("cachedContent"), str):
        return str(body["cachedContent"])
    google = (body.get("extra_body") or {}).get("google") if isinstance(body, dict) else None
    name = google.get("cached_content") if isinstance(google, dict) else None
    return name if isinstance(name, str) else None


def _text(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def _seconds(value: Any) -> float:
    try:
        seconds = float(str(value).removesuffix("s"))
    except ValueError:
        return 3600.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 3600.0


def _error(code: int, message: str, status: str) -> web.Response:
    body = bodies.dumps({"error": {"code": code, "message": message, "status": status}})
    return web.Response(status=code, body=body, content_type="application/json")


__all__ = ["PREFIX", "CacheStats", "CachedContents", "cached_name"]
