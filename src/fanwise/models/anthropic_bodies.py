"""Anthropic's Messages API read into completions and errors, for every transport.

A Message's ``content`` is a list of blocks: the text of its ``text`` blocks is the answer,
``tool_use`` blocks are tool calls, ``thinking`` blocks stay in the raw body. Usage counts the
cache: fanwise's input tokens are ``input_tokens`` plus both cache counts (Anthropic reports
them apart), its cached tokens are the cache reads and its cache write tokens the writes.

Errors keep fanwise's kinds, with Anthropic's exceptions: a 529 ``overloaded_error`` is a
retryable ``server`` error; a spend limit or an empty credit balance is ``auth`` whatever its
status (a 429 with ``enforced_spend_limit_reached``, a 400 about credit or usage limits, a 402),
so it is never retried. Rate limits arrive as ``anthropic-ratelimit-*`` headers whose resets are
RFC 3339 times; ``limit_headers`` adds them in the ``x-ratelimit-*`` form the limiter reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from fanwise.models.base import Completion, Endpoint, ToolCall, Usage
from fanwise.models.compat import status_error
from fanwise.models.surrogates import Halves, whole
from fanwise.outcome import AuthError, CallError, InvalidResponse, ServerError
from fanwise.redact import redact

Headers = Mapping[str, str]
Clock = Callable[[], float]

VERSION = "2023-06-01"
"""The ``anthropic-version`` header every request carries."""

_BUCKETS = {"requests": ("requests",), "tokens": ("tokens", "input-tokens", "output-tokens")}
"""fanwise's unit and the Anthropic buckets that report it, the tightest first: ``tokens`` is
the most restrictive token limit in effect, the input and output buckets stand in without it."""

STRUCTURED_BETA = "structured-outputs-2025-11-13"
"""The beta a body's ``output_format`` (structured outputs' first form) needs; the GA form,
``output_config.format``, needs none."""

_BILLING = ("credit balance", "spend limit", "usage limits", "billing")


def beta_headers(body: Mapping[str, Any]) -> dict[str, str]:
    """The ``anthropic-beta`` header a body needs and cannot carry itself: fanwise adds what the
    request left out, and never changes the body."""
    return {"anthropic-beta": STRUCTURED_BETA} if "output_format" in body else {}


def message_completion(data: Any, raw: bytes, headers: Headers) -> Completion:
    """A Message object as a completion: its text blocks, tool calls and stop reason."""
    if not isinstance(data, dict) or data.get("type") not in ("message", None):
        raise InvalidResponse(f"the server's answer is not a message: {str(data)[:200]!r}")
    if not isinstance(data.get("content"), list):
        raise InvalidResponse("the server's answer has no content")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif block.get("type") in ("tool_use", "server_tool_use"):
            arguments = block.get("input", {})
            calls.append(
                ToolCall(
                    id=str(block.get("id") or ""),
                    name=str(block.get("name") or ""),
                    arguments=json.dumps(arguments, ensure_ascii=False),
                )
            )
    text = whole("".join(texts))
    stop = data.get("stop_reason")
    refusal = (text or "refused") if stop == "refusal" else None
    if not (text or calls or refusal):
        raise InvalidResponse(f"the message has no text (stop reason {stop})")
    return Completion(
        text=text,
        usage=messages_usage(data.get("usage")),
        model=str(data.get("model") or ""),
        response_id=data["id"] if isinstance(data.get("id"), str) else None,
        headers=headers,
        raw=raw,
        endpoint=Endpoint.MESSAGES,
        finish_reason=stop if isinstance(stop, str) else None,
        refusal=refusal,
        tool_calls=tuple(calls),
        request_id=headers.get("request-id"),
    )


def messages_usage(usage: Any) -> Usage:
    """Usage from a Message's ``usage``: every input token, cache writes and reads included.

    The writes are kept apart too (``cache_write_tokens``): they cost more than plain input,
    and those to the 1-hour cache (``cache_creation.ephemeral_1h_input_tokens``) more again.
    """
    if not isinstance(usage, dict):
        return Usage()
    fresh = _int(usage.get("input_tokens"))
    written = _int(usage.get("cache_creation_input_tokens"))
    read = _int(usage.get("cache_read_input_tokens"))
    split = usage.get("cache_creation")  # {"ephemeral_5m_input_tokens", "ephemeral_1h_..."}
    hour = _int(split.get("ephemeral_1h_input_tokens")) if isinstance(split, dict) else 0
    return Usage(
        input_tokens=fresh + written + read,
        output_tokens=_int(usage.get("output_tokens")),
        cached_tokens=read,
        cache_write_tokens=written,
        cache_write_1h_tokens=min(hour, written),
    )


class MessagesStream:
    """Reads a Messages stream's events into the Message they add up to, as the SDK does.

    A stream that ends before ``message_stop``, however cleanly, was cut short:
    ``invalid_response``. A character split across two text deltas is joined (``Halves``)."""

    def __init__(self, on_delta: Callable[[str], None]) -> None:
        self.on_delta = on_delta
        self.halves = Halves()
        self.message: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.json_parts: dict[int, list[str]] = {}
        self.stopped = False

    def take(self, data: str) -> bool:
        """Read one event's data; True once ``message_stop`` has come."""
        event = json.loads(data)
        if not isinstance(event, dict):
            raise InvalidResponse(f"a stream event is not a JSON object: {data[:200]!r}")
        kind = event.get("type")
        if kind == "error":
            error = event.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            raise ServerError(redact(str(message or "an error occurred during streaming"))[:500])
        if kind == "message_start" and isinstance(event.get("message"), dict):
            self.message = dict(event["message"])
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            self.blocks[_int(event.get("index"))] = dict(event["content_block"])
        elif kind == "content_block_delta" and isinstance(event.get("delta"), dict):
            self._delta(_int(event.get("index")), event["delta"])
        elif kind == "message_delta" and self.message is not None:
            delta = event.get("delta")
            if isinstance(delta, dict):
                self.message.update(delta)
            if isinstance(event.get("usage"), dict):
                self.message["usage"] = {**(self.message.get("usage") or {}), **event["usage"]}
        elif kind == "message_stop":
            self.stopped = True
        return self.stopped

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self.blocks.setdefault(index, {"type": "text", "text": ""})
        kind = delta.get("type")
        if kind == "text_delta":
            text = str(delta.get("text") or "")
            block["text"] = str(block.get("text") or "") + text
            shown = self.halves.feed(text)
            if shown:
                self.on_delta(shown)
        elif kind == "input_json_delta":
            self.json_parts.setdefault(index, []).append(str(delta.get("partial_json") or ""))
        elif kind == "thinking_delta":
            block["thinking"] = str(block.get("thinking") or "") + str(delta.get("thinking") or "")
        elif kind == "signature_delta":
            block["signature"] = str(delta.get("signature") or "")

    def result(self, headers: Headers) -> Completion:
        if self.message is None or not self.stopped:
            raise InvalidResponse("the stream ended before message_stop (cut short)")
        tail = self.halves.flush()
        if tail:
            self.on_delta(tail)
        for block in self.blocks.values():
            for key in ("text", "thinking"):
                if isinstance(block.get(key), str):
                    block[key] = whole(block[key])
        for index, parts in self.json_parts.items():
            try:
                self.blocks[index]["input"] = json.loads(whole("".join(parts)) or "{}")
            except ValueError as exc:
                raise InvalidResponse(f"a tool call's input is not JSON: {exc}") from exc
        body = {**self.message, "content": [self.blocks[i] for i in sorted(self.blocks)]}
        return message_completion(body, json.dumps(body, ensure_ascii=False).encode(), headers)


def error_from_body(status: int, raw: bytes, headers: Headers, now: Clock = time.time) -> CallError:
    """A non-2xx answer as a classified error; spend limits and credit are final ``auth``."""
    limits = limit_headers(headers, now)
    message, kind, detail = f"Error code: {status}", None, None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind = error.get("type") if isinstance(error.get("type"), str) else None
        if isinstance(error.get("message"), str) and error["message"]:
            message += f" - {error['message']}"
        details = error.get("details")
        detail = details.get("error_code") if isinstance(details, dict) else None
    message = redact(message)[:500]
    if is_billing(status, message, detail):
        return AuthError(
            f"{message} (a spend limit or the credit balance: check the account's billing)",
            status_code=status,
            code=str(detail or kind or "billing"),
            body=raw,
        )
    return status_error(status, message, code=kind, headers=limits, body=raw)


def is_billing(status: int, message: str, detail: object = None) -> bool:
    """Whether an error says the account may not spend more: no retry can help it."""
    if status == 402 or detail == "enforced_spend_limit_reached":
        return True
    lowered = message.lower()
    return status in (400, 403, 429) and any(word in lowered for word in _BILLING)


def limit_headers(headers: Headers, now: Clock = time.time) -> dict[str, str]:
    """``headers`` plus the ``x-ratelimit-*`` form of their ``anthropic-ratelimit-*`` ones.

    Each reset, an RFC 3339 time, becomes the seconds from ``now()`` until it (``"12.5s"``);
    nothing already there is overwritten.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    added: dict[str, str] = {}
    for unit, buckets in _BUCKETS.items():
        for bucket in buckets:
            limit = lowered.get(f"anthropic-ratelimit-{bucket}-limit")
            remaining = lowered.get(f"anthropic-ratelimit-{bucket}-remaining")
            if limit is None or remaining is None:
                continue
            added[f"x-ratelimit-limit-{unit}"] = limit
            added[f"x-ratelimit-remaining-{unit}"] = remaining
            reset = reset_seconds(lowered.get(f"anthropic-ratelimit-{bucket}-reset"), now)
            if reset is not None:
                added[f"x-ratelimit-reset-{unit}"] = f"{reset:.3f}s"
            break
    return {**added, **lowered} if added else lowered


def reset_seconds(value: str | None, now: Clock = time.time) -> float | None:
    """Seconds until an RFC 3339 time (``2025-11-05T10:00:30Z``); None when unreadable."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def made_message(text: str, usage: Usage, model: str, rid: str) -> dict[str, Any]:
    """The Message the API would send with this answer, for a model with no body of its own."""
    return {
        "id": f"msg_{rid}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens,
            "cache_read_input_tokens": usage.cached_tokens,
            "output_tokens": usage.output_tokens,
        },
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


__all__ = [
    "STRUCTURED_BETA",
    "VERSION",
    "MessagesStream",
    "beta_headers",
    "error_from_body",
    "is_billing",
    "limit_headers",
    "made_message",
    "message_completion",
    "messages_usage",
    "reset_seconds",
]
