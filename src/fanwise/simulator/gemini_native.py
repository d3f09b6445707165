"""Gemini's own API in front of the simulator's one brain: ``generateContent`` and its kin.

``POST /v1beta/models/{model}:generateContent`` (and ``:streamGenerateContent?alt=sse``,
``:embedContent``) is read into the Chat Completions (or embeddings) body it means: ``contents``
as turns (``model`` as the assistant), ``systemInstruction`` as the system turn,
``generationConfig`` (``maxOutputTokens``, ``temperature``, a ``responseJsonSchema`` or
``responseSchema`` as a JSON schema format), ``tools[].functionDeclarations`` as functions. The
core decides its fate as for every face, and the reply is written back in Google's shapes: a
``GenerateContentResponse`` (``usageMetadata``, ``modelVersion``, ``responseId``), an SSE
stream of them, an ``EmbedContentResponse``; errors as Google's ``{"error": {"code",
"message", "status", "details"}}`` with ``RetryInfo`` on a 429 and a per-day ``QuotaFailure``
for the ``spend`` fault (``simulator/gemini.py``'s rules), and no rate-limit headers.
"""

from __future__ import annotations

import json
from typing import Any

from fanwise.simulator import bodies
from fanwise.simulator import gemini as _compat
from fanwise.simulator.reply import SSE, Reply
from fanwise.simulator.request import RequestError, json_object

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


def chat_body(raw: bytes, model: str, *, stream: bool = False) -> bytes:
    """The Chat Completions body a ``GenerateContentRequest`` means (``RequestError``: a 400)."""
    data = json_object(raw)
    contents = data.get("contents")
    if not isinstance(contents, list) or not contents:
        raise RequestError("contents: Field required (a non-empty list)", param="contents")
    messages: list[dict[str, Any]] = []
    system = _parts_text(data.get("systemInstruction"))
    if system:
        messages.append({"role": "system", "content": system})
    for turn in contents:
        if not isinstance(turn, dict):
            raise RequestError("contents: each turn must be an object")
        role = "assistant" if turn.get("role") == "model" else "user"
        messages.append({"role": role, "content": _parts_text(turn)})
    chat: dict[str, Any] = {"model": model, "messages": messages}
    config = data.get("generationConfig")
    config = config if isinstance(config, dict) else {}
    if isinstance(config.get("maxOutputTokens"), int):
        chat["max_completion_tokens"] = config["maxOutputTokens"]
    if isinstance(config.get("temperature"), int | float):
        chat["temperature"] = config["temperature"]
    schema = config.get("responseJsonSchema", config.get("responseSchema"))
    if isinstance(schema, dict):
        wanted = {"name": "output", "schema": _lowered(schema), "strict": True}
        chat["response_format"] = {"type": "json_schema", "json_schema": wanted}
    functions = [
        {"type": "function", "function": {"name": f.get("name", ""),
                                          "parameters": _lowered(f.get("parameters") or {})}}
        for tool in data.get("tools") or [] if isinstance(tool, dict)
        for f in tool.get("functionDeclarations") or [] if isinstance(f, dict)
    ]  # fmt: skip
    if functions:
        chat["tools"] = functions
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return bodies.dumps(chat)


def embeddings_body(raw: bytes, model: str) -> bytes:
    """The embeddings body an ``EmbedContentRequest`` means."""
    data = json_object(raw)
    text = _parts_text(data.get("content"))
    if not text:
        raise RequestError("content: Field required", param="content")
    return bodies.dumps({"model": model, "input": text})


def translate(reply: Reply, model: str) -> Reply:
    """The core's OpenAI-shaped reply in Gemini's own shapes; drops and hangs pass."""
    if reply.action != "answer":
        return reply
    google = _compat.translate(reply)  # errors in Google's words, headers Google's
    if reply.status >= 300:
        error = json.loads(google.body)[0]  # the compatible endpoint's list, unwrapped
        return Reply(status=reply.status, body=bodies.dumps(error), headers=google.headers,
                     delay=reply.delay)  # fmt: skip
    if reply.content_type == SSE:
        stop: list[str] = []
        head = _events(reply.body, model, stop)
        tail = None if reply.tail is None else _events(reply.tail, model, stop)
        return Reply(body=head, tail=tail, headers=google.headers, content_type=SSE,
                     delay=reply.delay)  # fmt: skip
    try:
        data = json.loads(reply.body)
    except ValueError:  # a cut-off body (the garbage fault) stays cut off
        return Reply(body=reply.body, headers=google.headers, delay=reply.delay)
    if data.get("object") == "list":  # embeddings
        first = (data.get("data") or [{}])[0]
        body: dict[str, Any] = {"embedding": {"values": first.get("embedding", [])}}
    else:
        body = response(data, model)
    return Reply(body=bodies.dumps(body), headers=google.headers, delay=reply.delay)


def response(chat: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat completion as the ``GenerateContentResponse`` Gemini would have sent."""
    choice = (chat.get("choices") or [{}])[0]
    said = choice.get("message") or {}
    parts = _out_parts(said.get("content"), said.get("tool_calls"))
    return {
        "candidates": [
            {
                "content": {"parts": parts, "role": "model"},
                "finishReason": _FINISH.get(str(choice.get("finish_reason")), "STOP"),
                "index": 0,
            }
        ],
        "usageMetadata": usage(chat.get("usage")),
        "modelVersion": model,
        "responseId": str(chat.get("id", "")).removeprefix("chatcmpl-")[:22],
    }


def usage(chat_usage: Any) -> dict[str, int]:
    chat_usage = chat_usage if isinstance(chat_usage, dict) else {}
    prompt = int(chat_usage.get("prompt_tokens", 0))
    out = int(chat_usage.get("completion_tokens", 0))
    cached = int((chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
    data = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": out,
        "totalTokenCount": prompt + out,
    }
    if cached:
        data["cachedContentTokenCount"] = cached
    return data


def _events(raw: bytes, model: str, stop: list[str]) -> bytes:
    """Chat chunks as Gemini's SSE events; the finish reason rides on the usage event."""
    out: list[bytes] = []
    for block in raw.split(b"\n\n"):
        data = block.partition(b"data: ")[2]
        if not data or data == b"[DONE]":
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            return raw  # the garbage fault: a cut-off event
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            parts = _out_parts(delta.get("content"), delta.get("tool_calls"))
            if parts:
                event = {"candidates": [{"content": {"parts": parts, "role": "model"},
                                         "index": 0}], "modelVersion": model}  # fmt: skip
                out.append(b"data: " + bodies.dumps(event) + b"\r\n\r\n")
            if choice.get("finish_reason"):
                stop.append(_FINISH.get(choice["finish_reason"], "STOP"))
        if chunk.get("usage"):
            last = {"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"},
                                    "finishReason": stop[-1] if stop else "STOP", "index": 0}],
                    "usageMetadata": usage(chunk["usage"]), "modelVersion": model}  # fmt: skip
            out.append(b"data: " + bodies.dumps(last) + b"\r\n\r\n")
    return b"".join(out)


def _out_parts(content: Any, calls: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": content}] if content else []
    for call in calls or []:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        args = json.loads(function.get("arguments") or "{}")
        parts.append({"functionCall": {"name": function.get("name", ""), "args": args}})
    return parts


def _parts_text(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "".join(str(p["text"]) for p in parts if isinstance(p, dict) and "text" in p)


def _lowered(node: Any) -> Any:
    """An OpenAPI-style schema (``"OBJECT"``) as JSON Schema (``"object"``), for the brain."""
    if isinstance(node, list):
        return [_lowered(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _lowered(sub) for name, sub in value.items()}
        else:
            out[key] = _lowered(value)
    if isinstance(out.get("type"), str):
        out["type"] = out["type"].lower()
    return out


__all__ = ["chat_body", "embeddings_body", "response", "translate", "usage"]
