"""Anthropic's Messages API through the official ``anthropic`` SDK: ``--transport sdk``.

As ``models/openai.py`` does for OpenAI: the body goes through the SDK's client unchanged
(``client.post("/v1/messages", cast_to=httpx2.Response)``), so the SDK owns the connection,
auth, headers and status errors, and the raw bytes that come back are read by
``models.anthropic_bodies``, the same reader as the aiohttp transport's. The SDK's retries are
off (``max_retries=0``): fanwise owns retries. Every SDK and transport error leaves this module
as one of fanwise's classified errors, with the SDK's error as its ``__cause__``; a status
error goes through the same ``error_from_body``, so both transports give the same kinds.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

import anthropic
import httpx2
from anthropic import AsyncAnthropic

from fanwise.models.anthropic_bodies import (
    Clock,
    MessagesStream,
    beta_headers,
    error_from_body,
    limit_headers,
    message_completion,
)
from fanwise.models.base import Completion, DeltaSink, Endpoint, Model, Request
from fanwise.models.bodies import lowered_headers
from fanwise.models.sdk_errors import response_content, sdk_errors, sdk_message
from fanwise.models.sse import SseLines
from fanwise.outcome import (
    BadRequest,
    CallError,
    CallTimeout,
    InvalidResponse,
    NetworkError,
    ServerError,
)
from fanwise.schemas_anthropic import FormatFallback


class AnthropicSdkModel(Model):
    """Claude through the official SDK's client; ``base_url`` is the API root, as it takes it."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: AsyncAnthropic | None = None,
        environ: Mapping[str, str] = os.environ,
        clock: Clock = time.time,
    ) -> None:
        root = (base_url or environ.get("ANTHROPIC_BASE_URL") or "").rstrip("/")
        self.client = client or AsyncAnthropic(
            api_key=api_key or environ.get("ANTHROPIC_API_KEY"),
            base_url=root.removesuffix("/v1") or None,
            max_retries=0,
            timeout=None,
        )
        self._clock = clock
        self._fallback = FormatFallback()  # a server that refuses output_config.format

    @property
    def name(self) -> str:
        return "anthropic"

    async def aclose(self) -> None:
        await self.client.close()

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        if request.endpoint is not Endpoint.MESSAGES:
            raise BadRequest(
                f"the anthropic provider speaks the messages endpoint, not {request.endpoint}"
            )
        return await self._fallback.send(request, lambda sent: self._send(sent, on_delta))

    async def _send(self, request: Request, on_delta: DeltaSink | None) -> Completion:
        with sdk_errors(anthropic.AnthropicError, self.classify):
            if on_delta is None:
                response = await self.client.post(
                    "/v1/messages",
                    cast_to=httpx2.Response,
                    body=dict(request.body),
                    options={"headers": beta_headers(request.body)},
                )
                headers = limit_headers(lowered_headers(dict(response.headers)), self._clock)
                return message_completion(json.loads(response.content), response.content, headers)
            return await self._stream(request, on_delta)

    async def _stream(self, request: Request, on_delta: DeltaSink) -> Completion:
        reader = MessagesStream(on_delta)
        response: Any = await self.client.post(
            "/v1/messages",
            cast_to=httpx2.Response,
            body={**request.body, "stream": True},
            options={"headers": beta_headers(request.body)},
            stream=True,
        )
        try:
            headers = limit_headers(lowered_headers(dict(response.headers)), self._clock)
            lines = SseLines()
            async for chunk in response.aiter_bytes():
                for data in lines.feed(chunk):
                    reader.take(data)
            for data in lines.close():
                reader.take(data)
        finally:
            await response.aclose()
        return reader.result(headers)

    def classify(self, exc: BaseException) -> CallError:
        """Map an SDK or transport failure onto the taxonomy; the order of the checks matters."""
        message = sdk_message(exc)
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
            return CallTimeout(message)
        if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
            return NetworkError(message)
        if isinstance(exc, anthropic.APIResponseValidationError | json.JSONDecodeError):
            return InvalidResponse(message)
        if isinstance(exc, anthropic.APIStatusError):
            raw = response_content(exc.response) or b""
            headers = lowered_headers(dict(exc.response.headers))
            return error_from_body(exc.status_code, raw, headers, self._clock)
        if isinstance(exc, httpx2.HTTPError):
            return NetworkError(message)
        return ServerError(message)  # an error without a status, e.g. one inside a stream


__all__ = ["AnthropicSdkModel"]
