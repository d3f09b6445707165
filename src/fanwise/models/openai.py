"""OpenAI, and every OpenAI-compatible server, through the official SDK.

Each request's own body goes to its own endpoint through the SDK's client (``client.post``
with ``cast_to=httpx2.Response``): the SDK owns the connection, auth and errors, and the body
that comes back is read from its raw bytes by ``models.bodies``, exactly as the aiohttp
transport reads it, never from re-serialised pydantic models. The SDK's own retries are off
(``max_retries=0``): fanwise owns retries, or the attempts would multiply. Every SDK and
transport error leaves this module as one of fanwise's classified errors, with the SDK error as
its ``__cause__``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI

from fanwise.models.base import Completion, DeltaSink, Endpoint, Model, Request
from fanwise.models.bodies import ChatStream, ResponsesStream, lowered_headers, read_body
from fanwise.models.compat import resolve_api_key, status_error, streamed_body
from fanwise.models.sdk_errors import response_content, sdk_errors, sdk_message
from fanwise.models.sse import SseLines
from fanwise.outcome import (
    AuthError,
    BadRequest,
    CallError,
    CallTimeout,
    InvalidResponse,
    NetworkError,
    ServerError,
)


class OpenAIModel(Model):
    """A model behind an OpenAI-compatible HTTP API, through the official SDK's client."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: AsyncOpenAI | None = None,
    ) -> None:
        # timeout=None: the engine bounds each attempt itself, and cancels the request.
        self.client = client or AsyncOpenAI(
            api_key=resolve_api_key(api_key, base_url, os.environ),
            base_url=base_url,
            max_retries=0,
            timeout=None,
        )

    @property
    def name(self) -> str:
        return "openai"

    async def aclose(self) -> None:
        await self.client.close()

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        """Post ``request.body`` through the SDK's client and read the raw body it returns."""
        with sdk_errors(openai.OpenAIError, classify_error):
            if on_delta is None or request.endpoint not in (Endpoint.RESPONSES, Endpoint.CHAT):
                response = await self.client.post(
                    request.endpoint.path, cast_to=httpx2.Response, body=dict(request.body)
                )
                return read_body(request.endpoint, response.content, lowered(response.headers))
            return await self._stream(request, on_delta)

    async def _stream(self, request: Request, on_delta: DeltaSink) -> Completion:
        reader = (
            ResponsesStream(on_delta)
            if request.endpoint is Endpoint.RESPONSES
            else ChatStream(on_delta, request.model)
        )
        response: Any = await self.client.post(
            request.endpoint.path,
            cast_to=httpx2.Response,
            body=streamed_body(request),
            stream=True,
        )
        try:
            headers = lowered(response.headers)
            if headers.get("content-type", "").split(";")[0].strip() == "application/json":
                # A compatible server that answers a stream request with a whole body.
                completion = read_body(request.endpoint, await response.aread(), headers)
                on_delta(completion.text)
                return completion
            lines = SseLines()
            async for chunk in response.aiter_bytes():
                for data in lines.feed(chunk):
                    reader.take(data)
            for data in lines.close():
                reader.take(data)
        finally:
            await response.aclose()
        return reader.result(headers)


def lowered(headers: httpx2.Headers) -> dict[str, str]:
    return lowered_headers(dict(headers))


def classify_error(exc: BaseException) -> CallError:
    """Map any SDK or transport failure onto the taxonomy. The order of the checks matters."""
    message = sdk_message(exc)
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return CallTimeout(message)
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
        return NetworkError(message)
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError):
        return InvalidResponse(message, status_code=getattr(exc, "status_code", None))
    if isinstance(exc, openai.APIStatusError):
        return _from_status(exc, message)
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return BadRequest(message, code="content_filter")
    if isinstance(exc, openai.LengthFinishReasonError):
        return InvalidResponse(message, code="length")
    if _named(exc, "SubjectTokenProviderError"):  # no workload-identity token could be had
        return AuthError(message)
    if isinstance(exc, openai.WebSocketConnectionClosedError | openai.WebSocketQueueFullError):
        return NetworkError(message)
    if isinstance(exc, httpx2.HTTPError):
        return NetworkError(message)
    # APIError without a status (an error event in a stream) and any other SDK failure.
    return ServerError(message)


def _from_status(exc: openai.APIStatusError, message: str) -> CallError:
    return status_error(
        exc.status_code,
        message,
        code=exc.code,
        headers=exc.response.headers,
        body=response_content(exc.response),
    )


def _named(exc: BaseException, name: str) -> bool:
    """``exc`` is of an SDK class the SDK does not export (matched by name, not imported from
    the private ``openai._exceptions``)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)
