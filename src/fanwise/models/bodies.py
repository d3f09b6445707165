"""OpenAI's JSON answers read into completions: one reader per API shape, plus stream events.

Every reader takes the raw body and keeps it whole in the completion; what fanwise reads from
it (text, tool calls, refusal, finish reason, usage, model, id) is read once, here, for both
transports (``models/fast.py`` and the SDK's raw responses in ``models/openai.py``) and for the
Batch API's result lines. A body that cannot be read is ``invalid_response``, a failure the
server reports is ``server``, and an error status goes through ``models.compat.status_error``.
Every shape is checked, so a surprising body is a classified error, never a ``TypeError``.
The text read has its surrogate halves joined and a lone one as U+FFFD (``models.surrogates``):
JSON can carry a lone ``"\ud83c"``, which neither stdout nor the journal could write; the raw
body keeps it as it came.

Hand-written rather than the SDK's pydantic models: in the profile of the SDK path
(docs/benchmarks.md) its request building and parsing cost about 0.35 ms of CPU a call, more
than the whole aiohttp floor's 0.23 to 0.37 ms.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from fanwise.models.anthropic_bodies import made_message, message_completion
from fanwise.models.base import Completion, Endpoint, ToolCall, Usage
from fanwise.models.compat import status_error
from fanwise.models.surrogates import Halves, whole
from fanwise.outcome import CallError, InvalidResponse, ServerError
from fanwise.redact import redact

Headers = Mapping[str, str]
Reader = Callable[[Any, bytes, Headers], Completion]


def read_body(endpoint: Endpoint, raw: bytes, headers: Headers) -> Completion:
    """A 2xx body of ``endpoint`` as a completion that keeps ``raw`` whole."""
    return READERS[endpoint](json.loads(raw), raw, headers)


def responses_completion(data: Any, raw: bytes, headers: Headers, streamed: str = "") -> Completion:
    """A Response object: its output text (or the ``streamed`` deltas), calls and refusal."""
    if not isinstance(data, dict):
        raise InvalidResponse(f"the server's answer is not a response object: {str(data)[:200]!r}")
    status = data.get("status")
    if status == "failed":
        error = data.get("error")
        detail = error.get("message") if isinstance(error, dict) else None
        raise ServerError(f"the response failed: {redact(str(detail or 'no detail'))}")
    text, refusal, calls = _responses_output(data)
    text = whole(streamed or text)
    if not (text or calls or refusal):
        raise InvalidResponse(f"the response has no output text (status {status})")
    incomplete = _get(data.get("incomplete_details"), "reason")
    return Completion(
        text=text,
        usage=responses_usage(data.get("usage")),
        model=str(data.get("model") or ""),
        response_id=_optional_str(data.get("id")),
        headers=headers,
        raw=raw,
        endpoint=Endpoint.RESPONSES,
        finish_reason=_optional_str(incomplete) or _optional_str(status),
        refusal=refusal,
        tool_calls=calls,
        request_id=headers.get("x-request-id"),
    )


def chat_completion(data: Any, raw: bytes, headers: Headers) -> Completion:
    """A ChatCompletion: the first choice's content, tool calls, refusal and finish reason."""
    choice = _first_choice(data)
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    text = message.get("content")
    text = whole(text) if isinstance(text, str) else ""
    refusal = _optional_str(message.get("refusal"))
    calls = tuple(
        ToolCall(
            id=str(call.get("id") or ""),
            name=str(_get(call.get("function"), "name") or ""),
            arguments=str(_get(call.get("function"), "arguments") or ""),
            type=str(call.get("type") or "function"),
        )
        for call in _list(message.get("tool_calls"))
        if isinstance(call, dict)
    )
    if not (text or calls or refusal):
        raise InvalidResponse("the server's answer has no text")
    return _choice_completion(data, raw, headers, Endpoint.CHAT, text, choice, refusal, calls)


def completions_completion(data: Any, raw: bytes, headers: Headers) -> Completion:
    """A legacy text Completion: the first choice's text."""
    choice = _first_choice(data)
    text = choice.get("text")
    if not isinstance(text, str):
        raise InvalidResponse("the server's answer has no text")
    return _choice_completion(
        data, raw, headers, Endpoint.COMPLETIONS, whole(text), choice, None, ()
    )


def embeddings_completion(data: Any, raw: bytes, headers: Headers) -> Completion:
    """An embeddings list: no text; the vectors stay in the body until ``embeddings`` is read."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise InvalidResponse("the server's answer has no embeddings")
    return Completion(
        text="",
        usage=chat_usage(data.get("usage")),
        model=str(data.get("model") or ""),
        headers=headers,
        raw=raw,
        endpoint=Endpoint.EMBEDDINGS,
        request_id=headers.get("x-request-id"),
    )


READERS: Mapping[Endpoint, Reader] = {
    Endpoint.RESPONSES: responses_completion,
    Endpoint.CHAT: chat_completion,
    Endpoint.COMPLETIONS: completions_completion,
    Endpoint.EMBEDDINGS: embeddings_completion,
    Endpoint.MESSAGES: message_completion,
}


def made_body(
    endpoint: Endpoint,
    text: str,
    usage: Usage,
    model: str,
    rid: str,
    inputs: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """The body ``endpoint``'s API would send with this answer, for a model that has none of
    its own to give (the offline model, a model written in Python): a batch output line needs
    one. An embeddings body gets a vector of eight numbers per input, from the input's digest.
    """
    if endpoint is Endpoint.MESSAGES:
        return made_message(text, usage, model, rid)
    if endpoint is Endpoint.EMBEDDINGS:
        data = [
            {"object": "embedding", "index": n, "embedding": _vector(item)}
            for n, item in enumerate(inputs)
        ]
        tokens = {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens}
        return {"object": "list", "data": data, "model": model, "usage": tokens}
    chat_usage = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if endpoint is Endpoint.CHAT:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return {"id": f"chatcmpl-{rid}", "object": "chat.completion", "created": 0,
                "model": model, "choices": [choice], "usage": chat_usage}  # fmt: skip
    if endpoint is Endpoint.COMPLETIONS:
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        return {"id": f"cmpl-{rid}", "object": "text_completion", "created": 0,
                "model": model, "choices": [choice], "usage": chat_usage}  # fmt: skip
    part = {"type": "output_text", "text": text, "annotations": []}
    item: dict[str, Any] = {"id": f"msg_{rid}", "type": "message", "role": "assistant",
               "status": "completed", "content": [part]}  # fmt: skip
    return {
        "id": f"resp_{rid}",
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "model": model,
        "output": [item],
        "parallel_tool_calls": True,
        "temperature": None,
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "usage": {
            "input_tokens": usage.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.total_tokens,
        },
    }


def _vector(text: str) -> list[float]:
    """Eight numbers from the text's digest: the same text, the same vector."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255 - 0.5, 4) for b in digest[:8]]


def _first_choice(data: Any) -> dict[str, Any]:
    choices = _list(data.get("choices")) if isinstance(data, dict) else []
    if not choices or not isinstance(choices[0], dict):
        raise InvalidResponse("the server's answer has no choices")
    choice: dict[str, Any] = choices[0]
    return choice


def _choice_completion(
    data: dict[str, Any],
    raw: bytes,
    headers: Headers,
    endpoint: Endpoint,
    text: str,
    choice: Mapping[str, Any],
    refusal: str | None,
    calls: tuple[ToolCall, ...],
) -> Completion:
    return Completion(
        text=text,
        usage=chat_usage(data.get("usage")),
        model=str(data.get("model") or ""),
        response_id=_optional_str(data.get("id")),
        headers=headers,
        raw=raw,
        endpoint=endpoint,
        finish_reason=_optional_str(choice.get("finish_reason")),
        refusal=refusal,
        tool_calls=calls,
        request_id=headers.get("x-request-id"),
    )


def _responses_output(response: Mapping[str, Any]) -> tuple[str, str | None, tuple[ToolCall, ...]]:
    """The text of every ``output_text`` part (as the SDK's ``output_text``), refusals, calls."""
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[ToolCall] = []
    for item in _list(response.get("output")):
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in _list(item.get("content")):
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    refusals.append(str(part.get("refusal") or ""))
        elif kind in ("function_call", "custom_tool_call"):
            calls.append(
                ToolCall(
                    id=str(item.get("call_id") or item.get("id") or ""),
                    name=str(item.get("name") or ""),
                    arguments=str(item.get("arguments", item.get("input")) or ""),
                    type="function" if kind == "function_call" else "custom",
                )
            )
    return "".join(texts), "".join(refusals) or None, tuple(calls)


class ResponsesStream:
    """Responses API events: text deltas, then ``response.completed`` (or
    ``response.incomplete``) with the whole response. A stream that stops before that event,
    however cleanly, is cut short: ``invalid_response``, retried, never an answer."""

    def __init__(self, on_delta: Callable[[str], None]) -> None:
        self.on_delta = on_delta
        self.parts: list[str] = []
        self.halves = Halves()
        self.final: dict[str, Any] | None = None

    def take(self, data: str) -> bool:
        """Read one event; True once the stream is over."""
        if data.startswith("[DONE]"):
            return True
        event = _event(data)
        kind = event.get("type")
        if kind == "response.output_text.delta":
            delta = self.halves.feed(str(event.get("delta", "")))
            if delta:
                self.parts.append(delta)
                self.on_delta(delta)
        elif kind in ("response.completed", "response.incomplete"):
            final = event.get("response")
            self.final = final if isinstance(final, dict) else {}
        elif kind in ("response.failed", "error"):
            detail = _get(event.get("response"), "error") if kind == "response.failed" else event
            raise ServerError(f"the stream reported a failure: {redact(str(detail or event))}")
        return False

    def result(self, headers: Headers) -> Completion:
        if self.final is None:
            raise InvalidResponse(
                f"the stream ended without a response.completed event (cut short after "
                f"{sum(map(len, self.parts)):,} characters)"
            )
        tail = self.halves.flush()
        if tail:
            self.parts.append(tail)
            self.on_delta(tail)
        raw = json.dumps(self.final, ensure_ascii=False).encode()
        return responses_completion(self.final, raw, headers, "".join(self.parts))


class ChatStream:
    """Chat Completions chunks, assembled into the ChatCompletion body they add up to.

    A whole stream has a chunk with the first choice's ``finish_reason`` (OpenAI, vLLM,
    llama.cpp, Ollama and Gemini all send one; usage may follow in a chunk of its own, and
    ``[DONE]`` may or may not close it). A stream without one was cut short, even when it ends
    with ``[DONE]`` (llama.cpp's server does so when it drops a request): ``invalid_response``.
    """

    def __init__(self, on_delta: Callable[[str], None], model: str) -> None:
        self.on_delta = on_delta
        self.parts: list[str] = []
        self.halves = Halves()
        self.refusal: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.head: dict[str, Any] = {"id": None, "created": 0, "model": model}
        self.finish_reason: str | None = None
        self.usage: Any = None

    def take(self, data: str) -> bool:
        if data.startswith("[DONE]"):
            return True
        chunk = _event(data)
        for key in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(key):
                self.head[key] = chunk[key]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in _list(chunk.get("choices")):
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self.finish_reason = reason
            delta: dict[str, Any] = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                content = self.halves.feed(content)
                if content:
                    self.parts.append(content)
                    self.on_delta(content)
            if isinstance(delta.get("refusal"), str):
                self.refusal.append(delta["refusal"])
            for call in _list(delta.get("tool_calls")):
                if isinstance(call, dict):
                    self._call(call)
        return False

    def _call(self, delta: dict[str, Any]) -> None:
        call = self.calls.setdefault(
            int(delta.get("index", 0)),
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        call["id"] = delta.get("id") or call["id"]
        call["type"] = delta.get("type") or call["type"]
        function: dict[str, Any] = (
            delta["function"] if isinstance(delta.get("function"), dict) else {}
        )
        call["function"]["name"] += str(function.get("name") or "")
        call["function"]["arguments"] += str(function.get("arguments") or "")

    def result(self, headers: Headers) -> Completion:
        if self.finish_reason is None:
            raise InvalidResponse(
                f"the stream ended without a finish_reason (cut short after "
                f"{sum(map(len, self.parts)):,} characters)"
            )
        tail = self.halves.flush()
        if tail:
            self.parts.append(tail)
            self.on_delta(tail)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.parts) or None,
            "refusal": whole("".join(self.refusal)) or None,
        }
        if self.calls:
            for call in self.calls.values():
                call["function"]["arguments"] = whole(call["function"]["arguments"])
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        body = {
            **self.head,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": self.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": self.usage,
        }
        if not (self.parts or self.calls or self.refusal):
            raise InvalidResponse("the stream ended with no text")
        return chat_completion(body, json.dumps(body, ensure_ascii=False).encode(), headers)


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


def error_from_body(status: int, raw: bytes, headers: Headers) -> CallError:
    """A non-2xx answer, read as the SDK reads it: "Error code: 429 - <its message>".

    The error keeps ``raw``: a batch output line gives the server's error body whole.
    """
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
    return status_error(status, redact(message)[:500], code=code, headers=headers, body=raw)


UNKNOWN_USAGE = Usage(unknown=1)
"""A body without usage (a stream whose server ignored ``stream_options``): unknown, not 0."""


def responses_usage(usage: Any) -> Usage:
    """Usage from a Responses API body's ``usage`` object (a dict; anything else: unknown)."""
    if not isinstance(usage, dict):
        return UNKNOWN_USAGE
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        reasoning_tokens=_int(_get(usage.get("output_tokens_details"), "reasoning_tokens")),
        cached_tokens=_int(_get(usage.get("input_tokens_details"), "cached_tokens")),
    )


def chat_usage(usage: Any) -> Usage:
    """Usage from a Chat Completions, Completions or embeddings body's ``usage`` object."""
    if not isinstance(usage, dict):
        return UNKNOWN_USAGE
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
    "READERS",
    "ChatStream",
    "ResponsesStream",
    "chat_completion",
    "chat_usage",
    "completions_completion",
    "embeddings_completion",
    "error_from_body",
    "error_message",
    "lowered_headers",
    "made_body",
    "read_body",
    "responses_completion",
    "responses_usage",
]
