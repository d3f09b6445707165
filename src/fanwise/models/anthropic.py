"""Anthropic's Messages API over fanwise's shared aiohttp transport: ``--provider anthropic``.

The request body goes to ``POST {root}/v1/messages`` unchanged (plus ``"stream": true`` for a
streamed call), with ``x-api-key`` and ``anthropic-version``. ``root`` is the API root as the
official SDK takes it (``ANTHROPIC_BASE_URL``, default ``https://api.anthropic.com``); a root
that already ends in ``/v1`` is used as it is. What comes back is read by
``models.anthropic_bodies``: the same kinds as OpenAI's, with Anthropic's own exceptions
(529, spend limits), and its ``anthropic-ratelimit-*`` headers offered to the limiter in the
``x-ratelimit-*`` form it reads.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp

from fanwise.models.anthropic_bodies import (
    VERSION,
    Clock,
    MessagesStream,
    beta_headers,
    error_from_body,
    limit_headers,
    message_completion,
)
from fanwise.models.base import Completion, DeltaSink, Endpoint, Model, Request
from fanwise.models.bodies import lowered_headers
from fanwise.models.http_session import SharedSession, transport_errors
from fanwise.models.sse import SseLines
from fanwise.outcome import BadRequest
from fanwise.schemas_anthropic import FormatFallback

DEFAULT_ROOT = "https://api.anthropic.com"


def messages_url(root: str) -> str:
    """``{root}/v1/messages``; a root given with its ``/v1`` keeps just the one."""
    root = root.rstrip("/")
    return f"{root}/messages" if root.endswith("/v1") else f"{root}/v1/messages"


class AnthropicModel(Model):
    """Claude, through the Messages API, spoken to with aiohttp.

    One ``SharedSession`` carries every call; ``aclose()`` (or ``async with``) releases it.
    ``clock`` (wall time) turns the RFC 3339 resets into seconds.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        environ: Mapping[str, str] = os.environ,
        clock: Clock = time.time,
    ) -> None:
        key = api_key or environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ValueError("an API key is needed: pass api_key or set ANTHROPIC_API_KEY")
        self.base_url = (base_url or environ.get("ANTHROPIC_BASE_URL") or DEFAULT_ROOT).rstrip("/")
        self.url = messages_url(self.base_url)
        headers = {
            "x-api-key": key,
            "anthropic-version": VERSION,
            "content-type": "application/json",
        }
        self._clock = clock
        self._http = SharedSession(self.url, headers)
        self._fallback = FormatFallback()  # a server that refuses output_config.format

    @property
    def name(self) -> str:
        return "anthropic"

    async def aclose(self) -> None:
        """Release the connections; the next call opens a fresh session."""
        await self._http.aclose()

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        """Send ``request.body`` to the Messages API; stream it when ``on_delta`` is given."""
        if request.endpoint is not Endpoint.MESSAGES:
            raise BadRequest(
                f"the anthropic provider speaks the messages endpoint, not {request.endpoint}: "
                "give the request as a Messages body (endpoint messages, url /v1/messages)"
            )
        return await self._fallback.send(request, lambda sent: self._send(sent, on_delta))

    async def _send(self, request: Request, on_delta: DeltaSink | None) -> Completion:
        with transport_errors():
            if on_delta is None:
                return await self._call(request.body)
            return await self._stream(request.body, on_delta)

    async def _call(self, body: Mapping[str, Any]) -> Completion:
        async with self._post(body) as response:
            raw = await response.read()
            headers = lowered_headers(response.headers)
            if response.status >= 300:
                raise error_from_body(response.status, raw, headers, self._clock)
        return message_completion(json.loads(raw), raw, limit_headers(headers, self._clock))

    async def _stream(self, body: Mapping[str, Any], on_delta: DeltaSink) -> Completion:
        reader = MessagesStream(on_delta)
        async with self._post({**body, "stream": True}) as response:
            headers = lowered_headers(response.headers)
            if response.status >= 300:
                raise error_from_body(response.status, await response.read(), headers, self._clock)
            headers = limit_headers(headers, self._clock)
            if response.content_type == "application/json":  # a server that cannot stream
                raw = await response.read()
                completion = message_completion(json.loads(raw), raw, headers)
                on_delta(completion.text)
                return completion
            lines = SseLines()
            async for chunk in response.content.iter_any():
                for data in lines.feed(chunk):
                    reader.take(data)
            for data in lines.close():
                reader.take(data)
        return reader.result(headers)

    def _post(self, body: Mapping[str, Any]) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        return self._http.post(self.url, json.dumps(body).encode(), headers=beta_headers(body))


__all__ = ["DEFAULT_ROOT", "AnthropicModel", "messages_url"]
