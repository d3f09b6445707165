"""Response bodies and server-sent events shaped exactly as OpenAI sends them.

Shapes follow the real API closely enough that the official SDK parses them into its own types:
``Response`` (with a reasoning item before the message when reasoning was requested, as
reasoning models do), ``ChatCompletion``, their streaming events, and the error envelope.
"""

from __future__ import annotations

import hashlib
import json
from http import HTTPStatus
from typing import Any

from fanwise.simulator.answer import Answer, chunks
from fanwise.simulator.request import ApiRequest

Json = dict[str, Any]


def dumps(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def responses_body(req: ApiRequest, answer: Answer, rid: str, created: int) -> Json:
    """A completed (or, when cut short by ``max_output_tokens``, incomplete) Response object."""
    body = _response_shell(req, rid, created, "incomplete" if answer.incomplete else "completed")
    last = (
        _function_call(answer, rid)
        if answer.tool
        else _message(answer.text, rid, "completed", answer.refusal)
    )
    body["output"] = [*_reasoning_item(answer, rid), last]
    body["usage"] = {
        "input_tokens": answer.input_tokens,
        "input_tokens_details": {"cached_tokens": answer.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": answer.output_tokens,
        "output_tokens_details": {"reasoning_tokens": answer.reasoning_tokens},
        "total_tokens": answer.total_tokens,
    }
    if answer.incomplete:
        body["incomplete_details"] = {"reason": "max_output_tokens"}
    body["completed_at"] = created if not answer.incomplete else None
    return body


def responses_events(req: ApiRequest, answer: Answer, rid: str, created: int) -> list[Json]:
    """The whole Responses stream, from ``response.created`` to ``response.completed``."""
    shell = _response_shell(req, rid, created, "in_progress")
    events: list[Json] = [
        {"type": "response.created", "response": shell},
        {"type": "response.in_progress", "response": shell},
    ]
    reasoning = _reasoning_item(answer, rid)
    for item in reasoning:
        events.append({"type": "response.output_item.added", "output_index": 0, "item": item})
        events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    index, item_id = len(reasoning), f"msg_{rid}"
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    events.append(
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": _message("", rid, "in_progress"),
        }
    )
    if answer.refusal is not None:
        events += _refusal_events(answer.refusal, where)
    else:
        events.append({"type": "response.content_part.added", **where, "part": _text_part("")})
        for delta in chunks(answer.text):
            events.append(
                {"type": "response.output_text.delta", **where, "delta": delta, "logprobs": []}
            )
        events.append(
            {"type": "response.output_text.done", **where, "text": answer.text, "logprobs": []}
        )
        events.append(
            {"type": "response.content_part.done", **where, "part": _text_part(answer.text)}
        )
    events.append(
        {
            "type": "response.output_item.done",
            "output_index": index,
            "item": _message(answer.text, rid, "completed", answer.refusal),
        }
    )
    final = responses_body(req, answer, rid, created)
    done = "response.incomplete" if answer.incomplete else "response.completed"
    events.append({"type": done, "response": final})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def _response_shell(req: ApiRequest, rid: str, created: int, status: str) -> Json:
    return {
        "id": f"resp_{rid}",
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "model": req.model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": req.reasoning_effort, "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": req.format or {"type": "text"}, "verbosity": "medium"},
        "tool_choice": req.tool_choice or "auto",
        "tools": list(req.tools),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": {},
    }


def _reasoning_item(answer: Answer, rid: str) -> list[Json]:
    if not answer.reasoning_tokens:
        return []
    return [{"id": f"rs_{rid}", "type": "reasoning", "summary": []}]


def _function_call(answer: Answer, rid: str) -> Json:
    assert answer.tool is not None
    name, arguments = answer.tool
    return {
        "id": f"fc_{rid}",
        "type": "function_call",
        "status": "completed",
        "call_id": f"call_{rid[:24]}",
        "name": name,
        "arguments": arguments,
    }


def _refusal_events(refusal: str, where: Json) -> list[Json]:
    part = {"type": "refusal", "refusal": refusal}
    return [
        {"type": "response.content_part.added", **where, "part": {**part, "refusal": ""}},
        {"type": "response.refusal.delta", **where, "delta": refusal},
        {"type": "response.refusal.done", **where, "refusal": refusal},
        {"type": "response.content_part.done", **where, "part": part},
    ]


def _message(text: str, rid: str, status: str, refusal: str | None = None) -> Json:
    content: list[Json] = [_text_part(text)] if status == "completed" else []
    if refusal is not None and status == "completed":
        content = [{"type": "refusal", "refusal": refusal}]
    return {
        "id": f"msg_{rid}",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _text_part(text: str) -> Json:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def chat_body(req: ApiRequest, answer: Answer, rid: str, created: int) -> Json:
    """A ChatCompletion with one choice."""
    message: Json = {
        "role": "assistant",
        "content": None if answer.tool or answer.refusal is not None else answer.text,
        "refusal": answer.refusal,
        "annotations": [],
    }
    if answer.tool:
        name, arguments = answer.tool
        function = {"name": name, "arguments": arguments}
        message["tool_calls"] = [
            {"id": f"call_{rid[:24]}", "type": "function", "function": function}
        ]
    return {
        **_chat_shell(req, rid, created, "chat.completion"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish(answer),
            }
        ],
        "usage": _chat_usage(answer),
    }


def chat_events(req: ApiRequest, answer: Answer, rid: str, created: int) -> list[Json]:
    """The ``chat.completion.chunk`` objects of a stream (``[DONE]`` is added by the caller)."""
    shell = _chat_shell(req, rid, created, "chat.completion.chunk")
    if req.include_usage:
        shell["usage"] = None

    def chunk(delta: Json, finish: str | None = None) -> Json:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**shell, "choices": [choice]}

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if answer.refusal is not None:
        events.append(chunk({"refusal": answer.refusal}))
    events += [chunk({"content": piece}) for piece in chunks(answer.text)]
    if answer.tool:  # a tool call streams as one delta carrying its whole arguments
        name, arguments = answer.tool
        call = {"index": 0, "id": f"call_{rid[:24]}", "type": "function",
                "function": {"name": name, "arguments": arguments}}  # fmt: skip
        events.append(chunk({"tool_calls": [call]}))
    events.append(chunk({}, _finish(answer)))
    if req.include_usage:
        events.append({**shell, "choices": [], "usage": _chat_usage(answer)})
    return events


def _chat_shell(req: ApiRequest, rid: str, created: int, kind: str) -> Json:
    return {
        "id": f"chatcmpl-{rid}",
        "object": kind,
        "created": created,
        "model": req.model,
        "service_tier": "default",
        "system_fingerprint": None,
    }


def _finish(answer: Answer) -> str:
    if answer.tool:
        return "tool_calls"
    return "length" if answer.incomplete else "stop"


def embeddings_body(req: ApiRequest, answer: Answer, rid: str, created: int) -> Json:
    """An embeddings list: one vector of eight numbers per input, from the input's digest."""
    data = [
        {"object": "embedding", "index": n, "embedding": _vector(text)}
        for n, text in enumerate(req.inputs)
    ]
    usage = {"prompt_tokens": answer.input_tokens, "total_tokens": answer.input_tokens}
    return {"object": "list", "data": data, "model": req.model, "usage": usage}


def completions_body(req: ApiRequest, answer: Answer, rid: str, created: int) -> Json:
    """A legacy text Completion with one choice."""
    choice = {"text": answer.text, "index": 0, "logprobs": None, "finish_reason": _finish(answer)}
    return {
        "id": f"cmpl-{rid}",
        "object": "text_completion",
        "created": created,
        "model": req.model,
        "system_fingerprint": None,
        "choices": [choice],
        "usage": _chat_usage(answer),
    }


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255 - 0.5, 4) for b in digest[:8]]


def _chat_usage(answer: Answer) -> Json:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.total_tokens,
        "prompt_tokens_details": _prompt_details(answer),
        "completion_tokens_details": {
            "reasoning_tokens": answer.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def sse(events: list[Json], *, named: bool) -> bytes:
    """Events as an SSE byte stream; the Responses API names each event, Chat does not."""
    if named:
        return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), dumps(e)) for e in events)
    return b"".join(b"data: %s\n\n" % dumps(e) for e in events)


def models_body(models: tuple[str, ...], created: int) -> Json:
    data = [{"id": m, "object": "model", "created": created, "owned_by": "fanwise"} for m in models]
    return {"object": "list", "data": data}


def error_body(
    status: int,
    message: str | None = None,
    *,
    kind: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> Json:
    """OpenAI's error envelope; unspecified parts take the value OpenAI uses for ``status``."""
    default_kind, default_code, default_message = _ERRORS.get(status, (None, None, None))
    if default_kind is None:
        default_kind = "server_error" if status >= 500 else "invalid_request_error"
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {
        "error": {
            "message": message or default_message or f"Simulated {status} {phrase}.",
            "type": kind or default_kind,
            "param": param,
            "code": code or default_code,
        }
    }


_ERRORS: dict[int, tuple[str | None, str | None, str | None]] = {
    400: ("invalid_request_error", "context_length_exceeded", None),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory", None),
    404: ("invalid_request_error", "model_not_found", None),
    429: ("requests", "rate_limit_exceeded", None),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


__all__ = [
    "chat_body",
    "chat_events",
    "completions_body",
    "dumps",
    "embeddings_body",
    "error_body",
    "models_body",
    "responses_body",
    "responses_events",
    "sse",
]


def _prompt_details(answer: Answer) -> Json:
    details: Json = {"cached_tokens": answer.cached_tokens, "audio_tokens": 0}
    if answer.cache_write_tokens:  # an Anthropic breakpoint's write, for that face to report
        details["cache_write_tokens"] = answer.cache_write_tokens
    return details
