"""Input lines of a batch file, read one at a time into requests; a bad line says what and where.

Two shapes are accepted. OpenAI's batch-file format::

    {"custom_id": "r1", "method": "POST", "url": "/v1/responses",
     "body": {"model": "gpt-5-mini", "input": "Why is the sky blue?"}}
    {"custom_id": "r2", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}}

and a plain line, whose missing settings come from the command's flags::

    {"prompt": "Why is the sky blue?", "custom_id": "r3", "model": "gpt-5-nano"}

A body is honoured exactly: a field fanwise cannot send (tools, images, several turns) makes the
line bad rather than silently changing the question.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fanwise.models.base import Request
from fanwise.workflow import ModelSettings

URLS = ("/v1/responses", "/v1/chat/completions")
PLAIN_FIELDS = frozenset(
    {"prompt", "custom_id", "model", "instructions", "reasoning_effort", "max_output_tokens"}
    | {"temperature"}
)
IGNORED_BODY_FIELDS = frozenset(
    {"metadata", "store", "user", "stream", "service_tier", "prompt_cache_key"}
    | {"safety_identifier"}
)
_RESPONSES_FIELDS = frozenset(
    {"model", "input", "instructions", "reasoning", "max_output_tokens", "temperature"}
)
_CHAT_FIELDS = frozenset(
    {"model", "messages", "reasoning_effort", "max_completion_tokens", "max_tokens"}
    | {"temperature", "n"}
)


class _Bad(Exception):
    """What is wrong with a line, before its number is attached."""


class LineError(ValueError):
    """A line that cannot become a request: its number, its custom_id if known, and why."""

    def __init__(self, line: int, message: str, custom_id: str | None = None) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.custom_id = custom_id
        self.reason = message


@dataclass(frozen=True, slots=True)
class BatchLine:
    custom_id: str
    request: Request
    line: int


def parse_line(text: str, line: int, defaults: ModelSettings) -> BatchLine:
    """One line of the input file as a request, or ``LineError``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(line, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise LineError(line, 'expected a JSON object, e.g. {"prompt": "..."}')
    custom_id = data.get("custom_id")
    if custom_id is not None and not isinstance(custom_id, str):
        raise LineError(line, "custom_id must be a string")
    try:
        request = _request(data, custom_id, defaults)
    except _Bad as exc:
        raise LineError(line, str(exc), custom_id) from None
    return BatchLine(custom_id or f"line-{line}", request, line)


def _request(data: Mapping[str, Any], custom_id: str | None, defaults: ModelSettings) -> Request:
    if {"body", "url", "method"} & data.keys():
        if custom_id is None:
            raise _Bad("a batch request line needs a custom_id")
        return _batch_request(data)
    if "prompt" in data:
        return _plain_request(data, defaults)
    raise _Bad(
        'expected {"custom_id", "method", "url", "body"} (OpenAI batch format) or {"prompt": "..."}'
    )


def _plain_request(data: Mapping[str, Any], defaults: ModelSettings) -> Request:
    _no_unknown(data, PLAIN_FIELDS, "field")
    return Request(
        prompt=_text(data, "prompt"),
        model=_optional(data, "model", str) or defaults.model,
        instructions=_optional(data, "instructions", str),
        reasoning_effort=(
            _optional(data, "reasoning_effort", str)
            if "reasoning_effort" in data
            else defaults.reasoning_effort
        ),
        max_output_tokens=_tokens(data, "max_output_tokens") or defaults.max_output_tokens,
        temperature=(
            _number(data, "temperature") if "temperature" in data else defaults.temperature
        ),
    )


def _batch_request(data: Mapping[str, Any]) -> Request:
    _no_unknown(data, {"custom_id", "method", "url", "body"}, "field")
    method = data.get("method", "POST")
    if method != "POST":
        raise _Bad(f"method must be POST, got {method!r}")
    url = data.get("url")
    if url not in URLS:
        raise _Bad(f"url must be one of {', '.join(URLS)}, got {url!r}")
    body = data.get("body")
    if not isinstance(body, dict):
        raise _Bad("body must be a JSON object with the request")
    if "model" not in body or not isinstance(body["model"], str):
        raise _Bad("body.model must name the model, e.g. gpt-5-mini")
    if url == "/v1/responses":
        return _responses_request(body)
    return _chat_request(body)


def _responses_request(body: Mapping[str, Any]) -> Request:
    _no_unknown(body, _RESPONSES_FIELDS | IGNORED_BODY_FIELDS, "body field")
    if "input" not in body:
        raise _Bad("body.input is missing: the prompt to send")
    reasoning = body.get("reasoning") or {}
    if not isinstance(reasoning, dict):
        raise _Bad('body.reasoning must be an object, e.g. {"effort": "low"}')
    extra, prompt = _messages(body["input"], "body.input")
    instructions = _join(_optional(body, "instructions", str), extra)
    return Request(
        prompt=prompt,
        model=body["model"],
        instructions=instructions,
        reasoning_effort=_optional(reasoning, "effort", str),
        max_output_tokens=_tokens(body, "max_output_tokens"),
        temperature=_number(body, "temperature") if "temperature" in body else None,
    )


def _chat_request(body: Mapping[str, Any]) -> Request:
    _no_unknown(body, _CHAT_FIELDS | IGNORED_BODY_FIELDS, "body field")
    if body.get("n", 1) != 1:
        raise _Bad("body.n must be 1: one answer per line")
    if "messages" not in body:
        raise _Bad("body.messages is missing")
    instructions, prompt = _messages(body["messages"], "body.messages")
    return Request(
        prompt=prompt,
        model=body["model"],
        instructions=instructions,
        reasoning_effort=_optional(body, "reasoning_effort", str),
        max_output_tokens=_tokens(body, "max_completion_tokens") or _tokens(body, "max_tokens"),
        temperature=_number(body, "temperature") if "temperature" in body else None,
    )


def _messages(value: Any, where: str) -> tuple[str | None, str]:
    """System/developer text and the user's text; a conversation with answers is refused."""
    if isinstance(value, str):
        if not value.strip():
            raise _Bad(f"{where} is empty")
        return None, value
    if not isinstance(value, list) or not value:
        raise _Bad(f"{where} must be a string or a list of messages")
    system: list[str] = []
    user: list[str] = []
    for n, message in enumerate(value):
        if not isinstance(message, dict):
            raise _Bad(f"{where}[{n}] must be a message object with role and content")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_content(message.get("content"), f"{where}[{n}]"))
        elif role == "user":
            user.append(_content(message.get("content"), f"{where}[{n}]"))
        else:
            raise _Bad(
                f"{where}[{n}]: role {role!r} is not supported (one user turn, with optional "
                "system or developer messages)"
            )
    if not user:
        raise _Bad(f"{where} has no user message")
    return _join(*system), "\n\n".join(user)


def _content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise _Bad(f"{where}: content of type {kind!r} is not supported: text only")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise _Bad(f"{where}: content must be text or a list of text parts")


def _join(*texts: str | None) -> str | None:
    kept = [t for t in texts if t]
    return "\n\n".join(kept) if kept else None


def _no_unknown(data: Mapping[str, Any], known: frozenset[str] | set[str], what: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise _Bad(f"{what} {unknown[0]!r} is not supported by fanwise batch")


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{key} must be a non-empty string")
    return value


def _optional(data: Mapping[str, Any], key: str, kind: type[str]) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise _Bad(f"{key} must be a string")
    return value


def _tokens(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Bad(f"{key} must be a positive whole number")
    return value


def _number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"{key} must be a number")
    return float(value)
