"""OpenAI, and every OpenAI-compatible server, through the official SDK.

The Responses API is the default; ``api="chat"`` uses Chat Completions for servers that lack it
(vLLM, Ollama, LM Studio...). The SDK's own retries are off (``max_retries=0``): fanwise owns
retries, or the attempts would multiply. Every SDK and transport error leaves this module as one
of fanwise's classified errors, with the SDK error as its ``__cause__``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import httpx2
import openai
from openai import AsyncOpenAI

from fanwise.models.base import Completion, DeltaSink, Model, Request, Usage
from fanwise.models.bodies import chat_usage, responses_usage
from fanwise.models.compat import chat_body, responses_body, status_error
from fanwise.outcome import (
    AuthError,
    BadRequest,
    CallError,
    CallTimeout,
    InvalidResponse,
    NetworkError,
    ServerError,
)
from fanwise.redact import redact

Api = Literal["responses", "chat"]


class OpenAIModel(Model):
    """A model behind an OpenAI-compatible HTTP API."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        api: Api = "responses",
        client: AsyncOpenAI | None = None,
    ) -> None:
        if api not in ("responses", "chat"):
            raise ValueError(f"api must be 'responses' or 'chat', got {api!r}")
        self.api: Api = api
        # timeout=None: the engine bounds each attempt itself, and cancels the request.
        self.client = client or AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=None
        )

    @property
    def name(self) -> str:
        return "openai" if self.api == "responses" else "openai-chat"

    async def aclose(self) -> None:
        await self.client.close()

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        try:
            if self.api == "chat":
                return await self._chat(request, on_delta)
            return await self._responses(request, on_delta)
        except CallError:
            raise
        except (openai.OpenAIError, httpx2.HTTPError, json.JSONDecodeError) as exc:
            raise classify_error(exc) from exc

    async def _responses(self, request: Request, on_delta: DeltaSink | None) -> Completion:
        params = responses_body(request)
        if on_delta is None:
            raw = await self.client.responses.with_raw_response.create(**params)
            return _from_response(raw.parse(), dict(raw.headers))
        raw_stream = await self.client.responses.with_raw_response.create(**params, stream=True)
        headers = dict(raw_stream.headers)
        parts: list[str] = []
        final: Any = None
        async for event in raw_stream.parse():
            kind = getattr(event, "type", "")
            if kind == "response.output_text.delta":
                parts.append(event.delta)
                on_delta(event.delta)
            elif kind in ("response.completed", "response.incomplete"):
                final = event.response
            elif kind in ("response.failed", "error"):
                message = getattr(getattr(event, "response", event), "error", None) or event
                raise ServerError(f"the stream reported a failure: {redact(str(message))}")
        if final is None:
            raise InvalidResponse("the stream ended without a response.completed event")
        return Completion(
            text="".join(parts) or (final.output_text or ""),
            usage=responses_usage(_usage_dict(final.usage)),
            model=str(final.model),
            response_id=final.id,
            headers=headers,
        )

    async def _chat(self, request: Request, on_delta: DeltaSink | None) -> Completion:
        params = chat_body(request)
        if on_delta is None:
            raw = await self.client.chat.completions.with_raw_response.create(**params)
            completion = raw.parse()
            if (
                not isinstance(completion, openai.types.chat.ChatCompletion)
                or not completion.choices
            ):
                raise InvalidResponse("the server's answer has no choices")
            text = completion.choices[0].message.content
            if not text:
                raise InvalidResponse("the server's answer has no text")
            return Completion(
                text=text,
                usage=chat_usage(_usage_dict(completion.usage)),
                model=completion.model,
                response_id=completion.id,
                headers=dict(raw.headers),
            )
        raw_stream = await self.client.chat.completions.with_raw_response.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
        parts: list[str] = []
        usage = Usage()
        model, response_id = request.model, None
        async for chunk in raw_stream.parse():
            model, response_id = chunk.model or model, chunk.id or response_id
            if chunk.usage is not None:
                usage = chat_usage(_usage_dict(chunk.usage))
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
                    on_delta(choice.delta.content)
        if not parts:
            raise InvalidResponse("the stream ended with no text")
        return Completion("".join(parts), usage, model, response_id, dict(raw_stream.headers))


def _from_response(response: object, headers: Mapping[str, str]) -> Completion:
    if not isinstance(response, openai.types.responses.Response):
        raise InvalidResponse(
            f"the server's answer is not a response object: {str(response)[:200]!r}"
        )
    if response.status == "failed":
        detail = response.error.message if response.error else "no detail"
        raise ServerError(f"the response failed: {redact(detail)}")
    try:
        text = response.output_text
    except TypeError:  # a 2xx body without its ``output`` list: the SDK cannot read it
        text = ""
    if not text:
        raise InvalidResponse(f"the response has no output text (status {response.status})")
    return Completion(
        text=text,
        usage=responses_usage(_usage_dict(response.usage)),
        model=response.model,
        response_id=response.id,
        headers=headers,
    )


def _usage_dict(usage: Any) -> Any:
    """The SDK's pydantic usage as the plain dict the shared body readers take."""
    return usage.model_dump() if hasattr(usage, "model_dump") else usage


def classify_error(exc: BaseException) -> CallError:
    """Map any SDK or transport failure onto the taxonomy. The order of the checks matters."""
    message = redact(str(getattr(exc, "message", None) or exc or type(exc).__name__))[:500]
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
        exc.status_code, message, code=exc.code, headers=exc.response.headers, body=exc.body
    )


def _named(exc: BaseException, name: str) -> bool:
    """``exc`` is of an SDK class the SDK does not export (matched by name, not imported from
    the private ``openai._exceptions``)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)
