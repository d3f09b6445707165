"""Anthropic's Messages API in front of the simulator's one brain.

A ``POST /v1/messages`` body is read into the Chat Completions body it means (system, turns,
``max_tokens``, tools, stream, a JSON schema in ``output_config.format`` or ``output_format``),
the simulator's core decides its fate exactly as for OpenAI (scripts, fault header, buckets,
random faults, latency), and the reply is written back in
Anthropic's shapes: a Message, or the ``message_start`` ... ``message_stop`` event stream; the
error envelope ``{"type": "error", "error": {"type", "message"}}`` with Anthropic's error types
(``overloaded_error`` for a 529); ``anthropic-ratelimit-*`` headers with RFC 3339 resets and
``request-id``. So every fault the OpenAI face can serve, this face serves too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fanwise.simulator import bodies
from fanwise.simulator.prompt_cache import Breakpoint
from fanwise.simulator.ratelimit import UNLIMITED
from fanwise.simulator.reply import SSE, Reply
from fanwise.simulator.request import RequestError, json_object

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_UNITS = {"requests": ("requests",), "tokens": ("tokens", "input-tokens", "output-tokens")}
_DROPPED = ("x-ratelimit-", "retry-after-ms", "x-request-id")


def chat_body(raw: bytes) -> bytes:
    """The Chat Completions body a Messages body means; ``RequestError`` as Anthropic's 400s."""
    data = json_object(raw)
    if not isinstance(data.get("model"), str) or not data["model"]:
        raise RequestError("model: Field required", param="model")
    limit = data.get("max_tokens")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        message = "max_tokens: Field required (an integer of at least 1)"
        raise RequestError(message, param="max_tokens")
    turns = data.get("messages")
    if not isinstance(turns, list) or not turns:
        raise RequestError("messages: Field required", param="messages")
    messages: list[dict[str, Any]] = []
    system = _text(data.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for turn in turns:
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            raise RequestError("messages: each turn needs a role of user or assistant")
        content = turn.get("content")
        blocks = content if isinstance(content, list) else []
        if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks):
            messages.append({"role": "tool", "content": _text(content)})
        else:
            messages.append({"role": turn["role"], "content": _text(content)})
    chat: dict[str, Any] = {"model": data["model"], "messages": messages}
    chat["max_completion_tokens"] = limit
    if data.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    config = data.get("output_config")
    wanted = config.get("format") if isinstance(config, dict) else data.get("output_format")
    if isinstance(wanted, dict) and wanted.get("type") == "json_schema":  # structured outputs
        schema = {"name": "output", "schema": wanted.get("schema", {}), "strict": True}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    tools = [t for t in data.get("tools") or [] if isinstance(t, dict)]
    if tools:
        chat["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name", ""),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema", {}),
                },
            }
            for t in tools
        ]
        chat["tool_choice"] = _tool_choice(data.get("tool_choice"))
    return bodies.dumps(chat)


def invalid(error: RequestError, headers: dict[str, str]) -> Reply:
    """Anthropic's 400 for a body it cannot take."""
    return Reply(status=400, body=_error(400, error.message), headers=headers)


def translate(reply: Reply, now: Callable[[], float] = time.time) -> Reply:
    """The core's OpenAI-shaped reply in Anthropic's shapes and headers; drops and hangs pass."""
    if reply.action != "answer":
        return reply
    headers = _headers(reply.headers, now())
    if reply.status >= 300:
        return Reply(
            status=reply.status,
            body=_error(reply.status, *_message(reply.body)),
            headers=headers,
            delay=reply.delay,
        )
    if reply.content_type == SSE:
        head = _events(reply.body, first=True)
        tail = None if reply.tail is None else _events(reply.tail, first=False)
        return Reply(body=head, tail=tail, headers=headers, content_type=SSE, delay=reply.delay)
    try:
        chat = json.loads(reply.body)
    except ValueError:  # a cut-off body (the garbage fault) stays cut off
        return Reply(body=reply.body, headers=headers, delay=reply.delay)
    return Reply(body=bodies.dumps(message(chat)), headers=headers, delay=reply.delay)


def message(chat: dict[str, Any]) -> dict[str, Any]:
    """A chat completion as the Message Anthropic would have sent."""
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    said = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if said.get("content"):
        content.append({"type": "text", "text": said["content"]})
    for call in said.get("tool_calls") or []:
        function = call.get("function", {})
        content.append(
            {
                "type": "tool_use",
                "id": "toolu_" + str(call.get("id", "")).removeprefix("call_"),
                "name": function.get("name", ""),
                "input": json.loads(function.get("arguments") or "{}"),
            }
        )
    return {
        "id": "msg_" + str(chat.get("id", "")).removeprefix("chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": chat.get("model", ""),
        "content": content,
        "stop_reason": _STOP.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": _usage(chat.get("usage")),
    }


def _events(raw: bytes, *, first: bool) -> bytes:
    """Chat chunks (``data: {...}``) as Messages events; what is not JSON passes as it is."""
    out: list[dict[str, Any]] = []
    stop: list[str] = []
    for block in raw.split(b"\n\n"):
        data = block.partition(b"data: ")[2]
        if not data or data == b"[DONE]":
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            return raw  # the garbage fault: a cut-off event
        out += _chunk_events(chunk, first=first and not out, stop=stop)
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), bodies.dumps(e)) for e in out)


def _chunk_events(chunk: dict[str, Any], *, first: bool, stop: list[str]) -> list[dict[str, Any]]:
    """One chunk's events; ``stop`` carries the stop reason to the usage chunk after it."""
    events: list[dict[str, Any]] = []
    if first:
        shell = message({**chunk, "choices": [{"message": {}}], "usage": None})
        events.append({"type": "message_start", "message": {**shell, "stop_reason": None}})
        block = {"type": "text", "text": ""}
        events.append({"type": "content_block_start", "index": 0, "content_block": block})
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("content"):
            text = {"type": "text_delta", "text": delta["content"]}
            events.append({"type": "content_block_delta", "index": 0, "delta": text})
        for n, call in enumerate(delta.get("tool_calls") or [], start=1):
            function = call.get("function", {})
            tool = {"type": "tool_use", "id": f"toolu_{call.get('id', n)}",
                    "name": function.get("name", ""), "input": {}}  # fmt: skip
            events.append({"type": "content_block_start", "index": n, "content_block": tool})
            json_delta = {"type": "input_json_delta", "partial_json": function.get("arguments")}
            events.append({"type": "content_block_delta", "index": n, "delta": json_delta})
            events.append({"type": "content_block_stop", "index": n})
        if choice.get("finish_reason"):
            events.append({"type": "content_block_stop", "index": 0})
            stop.append(_STOP.get(choice["finish_reason"], "end_turn"))
    if chunk.get("usage"):
        delta_out = {"stop_reason": stop[-1] if stop else "end_turn", "stop_sequence": None}
        usage = _usage(chunk["usage"])  # cumulative, input and cache counts included
        events.append({"type": "message_delta", "delta": delta_out, "usage": usage})
        events.append({"type": "message_stop"})
    return events


def _headers(headers: dict[str, str], wall: float) -> dict[str, str]:
    """OpenAI's rate-limit headers as Anthropic's: resets become RFC 3339 times."""
    out = {k: v for k, v in headers.items() if not k.startswith(_DROPPED)}
    if "x-request-id" in headers:
        out["request-id"] = headers["x-request-id"]
    for unit, buckets in _UNITS.items():
        limit = headers.get(f"x-ratelimit-limit-{unit}")
        if limit is None or int(limit) >= UNLIMITED:
            continue
        reset = _seconds(headers.get(f"x-ratelimit-reset-{unit}", "0s"))
        when = datetime.fromtimestamp(wall + reset, UTC).isoformat(timespec="seconds")
        remaining = headers[f"x-ratelimit-remaining-{unit}"]
        for bucket in buckets:
            out[f"anthropic-ratelimit-{bucket}-limit"] = limit
            out[f"anthropic-ratelimit-{bucket}-remaining"] = remaining
            out[f"anthropic-ratelimit-{bucket}-reset"] = when.replace("+00:00", "Z")
    return out


def _seconds(duration: str) -> float:
    """OpenAI's ``"1m2.5s"`` / ``"20ms"`` in seconds (the simulator writes only these forms)."""
    total, number = 0.0, ""
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0}
    text = duration.replace("ms", "\0")
    for char in text:
        if char.isdigit() or char == ".":
            number += char
        elif number:
            total += float(number) * (0.001 if char == "\0" else scale.get(char, 0.0))
            number = ""
    return total


def _error(status: int, message: str, code: str | None = None) -> bytes:
    kind = _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    error: dict[str, Any] = {"type": kind, "message": message}
    if status == 529:
        error["message"] = "Overloaded"
    if code == "insufficient_quota":  # the spend fault: Anthropic's monthly spend limit
        error["message"] = "You have reached your specified workspace API usage limits. (simulated)"
        error["details"] = {"error_code": "enforced_spend_limit_reached"}
    return bodies.dumps({"type": "error", "error": error})


def _message(raw: bytes) -> tuple[str, str | None]:
    """The OpenAI-shaped error's message and code."""
    try:
        error = json.loads(raw)["error"]
        return str(error["message"]), error.get("code")
    except (ValueError, KeyError, TypeError):
        return "simulated error", None


def _usage(usage: Any) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` are only those after the last cache breakpoint."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read = int(details.get("cached_tokens", 0) or 0)
    written = int(details.get("cache_write_tokens", 0) or 0)
    return {
        "input_tokens": int(usage.get("prompt_tokens", 0)) - read - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": int(usage.get("completion_tokens", 0)),
    }


_TTLS = {"5m": 300.0, "1h": 3600.0}


def breakpoint(raw: bytes) -> Breakpoint | None:
    """The request's text up to its last ``cache_control`` marker (system blocks, then each
    turn's blocks; a top-level ``cache_control`` marks the last block), or None."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    blocks: list[Any] = []
    system = data.get("system")
    blocks += [{"type": "text", "text": system}] if isinstance(system, str) else _list(system)
    for turn in _list(data.get("messages")):
        content = turn.get("content") if isinstance(turn, dict) else None
        one = [{"type": "text", "text": content}] if isinstance(content, str) else None
        blocks += one or _list(content)
    end, marker = 0, None
    for n, block in enumerate(blocks, 1):
        if isinstance(block, dict) and isinstance(block.get("cache_control"), dict):
            end, marker = n, block["cache_control"]
    if isinstance(data.get("cache_control"), dict):
        end, marker = len(blocks), data["cache_control"]
    if marker is None:
        return None
    prefix = "\x1e".join(_text([b]) for b in blocks[:end])
    return Breakpoint(prefix, _TTLS.get(str(marker.get("ttl", "5m")), 300.0))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _tool_choice(choice: Any) -> Any:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return "none" if kind == "none" else "auto"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif isinstance(block, dict) and block.get("type") == "tool_result":
                parts.append(_text(block.get("content")))
        return "\n".join(parts)
    return ""


__all__ = ["breakpoint", "chat_body", "invalid", "message", "translate"]
