"""OpenAI's JSON answers read into completions: bodies, stream events and error envelopes.

The lean transport's reading half (``models/fast.py`` sends). Only the fields fanwise keeps are
read (text, usage, model, id), with the same rules as the SDK path in ``models/openai.py``: a
body that cannot be read is ``invalid_response``, a failure the server reports is ``server``,
and an error status goes through ``models.compat.status_error``. Every shape is checked, so a
surprising body is a classified error, never a ``TypeError``.

Hand-written rather than the SDK's pydantic models: in the profile of the SDK path
(docs/benchmarks.md) its request building and parsing (the openai and pydantic layers) cost
about 0.35 ms of CPU a call, more than the whole aiohttp floor's 0.23 to 0.37 ms.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fanwise.models.base import Completion, DeltaSink, Usage
from fanwise.models.compat import status_error
from fanwise.outcome import CallError, InvalidResponse, ServerError
from fanwise.redact import redact


class ResponsesStream:
    """Responses API events: text deltas, then ``response.completed`` with usage."""

    def __init__(self, on_delta: DeltaSink) -> None:
        self.on_delta = on_delta
        self.parts: list[str] = []
        self.final: dict[str, Any] | None = None

    def take(self, data: str) -> bool:
        """Read one event; True once the stream is over."""
        if data.startswith("[DONE]"):
            return True
        event = _event(data)
        kind = event.get("type")
        if kind == "response.output_text.delta":
            delta = str(event.get("delta", ""))
            self.parts.append(delta)
            self.on_delta(delta)
        elif kind in ("response.completed", "response.incomplete"):
            final = event.get("response")
            self.final = final if isinstance(final, dict) else {}
        elif kind in ("response.failed", "error"):
            detail = _get(event.get("response"), "error") if kind == "response.failed" else event
            raise ServerError(f"the stream reported a failure: {redact(str(detail or event))}")
        return False

    def result(self, headers: dict[str, str]) -> Completion:
        if self.final is None:
            raise InvalidResponse("the stream ended without a response.completed event")
        return Completion(
            text="".join(self.parts) or _output_text(self.final),
            usage=responses_usage(self.final.get("usage")),
            model=str(self.final.get("model") or ""),
            response_id=_optional_str(self.final.get("id")),
            headers=headers,
        )


class ChatStream:
    """Chat Completions chunks: content deltas, a last chunk with usage, then ``[DONE]``."""

    def __init__(self, on_delta: DeltaSink, model: str) -> None:
        self.on_delta = on_delta
        self.parts: list[str] = []
        self.usage = Usage()
        self.model = model
        self.response_id: str | None = None

    def take(self, data: str) -> bool:
        if data.startswith("[DONE]"):
            return True
        chunk = _event(data)
        self.model = str(chunk.get("model") or self.model)
        self.response_id = _optional_str(chunk.get("id")) or self.response_id
        if isinstance(chunk.get("usage"), dict):
            self.usage = chat_usage(chunk["usage"])
        for choice in _list(chunk.get("choices")):
            delta = choice.get("delta") if isinstance(choice, dict) else None
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                self.parts.append(content)
                self.on_delta(content)
        return False

    def result(self, headers: dict[str, str]) -> Completion:
        if not self.parts:
            raise InvalidResponse("the stream ended with no text")
        return Completion("".join(self.parts), self.usage, self.model, self.response_id, headers)


def _event(data: str) -> dict[str, Any]:
    """One event's JSON; an ``error`` in it is a failure the server reports (as the SDK does)."""
    event = json.loads(data)
    if not isinstance(event, dict):
        raise InvalidResponse(f"a stream event is not a JSON object: {data[:200]!r}")
    error = event.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else None
        raise ServerError(redact(str(message or "An error occurred during streaming"))[:500])
    return event


def error_from_body(status: int, raw: bytes, headers: Mapping[str, str]) -> CallError:
    """A non-2xx answer, read as the SDK reads it: "Error code: 429 - <its message>"."""
    message, code = f"Error code: {status}", None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    first = body[0] if isinstance(body, list) and body else body  # Gemini wraps it in a list
    error = first.get("error", first) if isinstance(first, dict) else None
    if isinstance(error, dict):
        if isinstance(error.get("message"), str) and error["message"]:
            message += f" - {error['message']}"
        code = str(error["code"]) if error.get("code") is not None else None
    return status_error(status, redact(message)[:500], code=code, headers=headers, body=body)


def responses_completion(data: Any, headers: dict[str, str]) -> Completion:
    if not isinstance(data, dict):
        raise InvalidResponse(f"the server's answer is not a response object: {str(data)[:200]!r}")
    status = data.get("status")
    if status == "failed":
        error = data.get("error")
        detail = error.get("message") if isinstance(error, dict) else None
        raise ServerError(f"the response failed: {redact(str(detail or 'no detail'))}")
    text = _output_text(data)
    if not text:
        raise InvalidResponse(f"the response has no output text (status {status})")
    return Completion(
        text=text,
        usage=responses_usage(data.get("usage")),
        model=str(data.get("model") or ""),
        response_id=_optional_str(data.get("id")),
        headers=headers,
    )


def chat_completion(data: Any, headers: dict[str, str]) -> Completion:
    choices = _list(data.get("choices")) if isinstance(data, dict) else []
    if not choices or not isinstance(choices[0], dict):
        raise InvalidResponse("the server's answer has no choices")
    message = choices[0].get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str) or not text:
        raise InvalidResponse("the server's answer has no text")
    assert isinstance(data, dict)  # choices came from it
    return Completion(
        text=text,
        usage=chat_usage(data.get("usage")),
        model=str(data.get("model") or ""),
        response_id=_optional_str(data.get("id")),
        headers=headers,
    )


def _output_text(response: Mapping[str, Any]) -> str:
    """The text of every ``output_text`` part of every message, as the SDK's ``output_text``."""
    texts = []
    for item in _list(response.get("output")):
        if isinstance(item, dict) and item.get("type") == "message":
            for part in _list(item.get("content")):
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
    return "".join(texts)


def responses_usage(usage: Any) -> Usage:
    """Usage from a Responses API body's ``usage`` object (a dict; anything else is zero)."""
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        reasoning_tokens=_int(_get(usage.get("output_tokens_details"), "reasoning_tokens")),
        cached_tokens=_int(_get(usage.get("input_tokens_details"), "cached_tokens")),
    )


def chat_usage(usage: Any) -> Usage:
    """Usage from a Chat Completions body's ``usage`` object (a dict; anything else is zero)."""
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        reasoning_tokens=_int(_get(usage.get("completion_tokens_details"), "reasoning_tokens")),
        cached_tokens=_int(_get(usage.get("prompt_tokens_details"), "cached_tokens")),
    )


def lowered_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names in lower case, as httpx2 hands them to the SDK path."""
    return {name.lower(): value for name, value in headers.items()}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def error_message(exc: BaseException) -> str:
    return redact(str(exc) or type(exc).__name__)[:500]


__all__ = [
    "ChatStream",
    "ResponsesStream",
    "chat_completion",
    "error_from_body",
    "error_message",
    "lowered_headers",
    "responses_completion",
]
