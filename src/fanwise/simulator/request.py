"""What a client asked for, read leniently from a Responses, Chat Completions, Completions or
embeddings request body.

Only what the simulator needs is kept: the text (to answer, count tokens and match scripts),
the model, streaming, the settings that change the answer's size, the tools it may call and
the output format it asked for (``response_format`` or ``text.format``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Api = Literal["responses", "chat", "embeddings", "completions"]


class RequestError(ValueError):
    """A body the real API would refuse with a 400; ``param`` names the offending field."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One parsed request. ``prompt`` is the user's text; ``text`` is all input, for counting."""

    api: Api
    model: str
    prompt: str
    text: str
    instructions: str | None = None
    stream: bool = False
    include_usage: bool = False
    max_output_tokens: int | None = None
    reasoning_effort: str | None = None
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: Any = None
    answered_tools: bool = False  # the input already holds a tool's result: answer in text
    format: dict[str, Any] | None = None  # response_format, or the Responses API's text.format
    inputs: tuple[str, ...] = ()  # the texts an embeddings request embeds, in order


def json_object(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or ``RequestError`` with the message OpenAI would give."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON "
            "payload, but what was sent was not valid JSON."
        ) from None
    if not isinstance(data, dict):
        raise RequestError("The request body must be a JSON object.")
    return data


def parse_request(api: Api, body: bytes) -> ApiRequest:
    """Parse a request body or raise ``RequestError`` with the message OpenAI would give."""
    data = json_object(body)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("Missing required parameter: 'model'.", param="model", code="missing")
    if api == "responses":
        return _responses(data, model)
    if api == "embeddings":
        return _embeddings(data, model)
    if api == "completions":
        return _completions(data, model)
    return _chat(data, model)


def _embeddings(data: dict[str, Any], model: str) -> ApiRequest:
    raw = data.get("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(i, str | list) for i in raw):
        inputs = [i if isinstance(i, str) else " ".join(map(str, i)) for i in raw]
    else:
        raise RequestError(
            "Invalid type for 'input': expected a string or an array of strings.", param="input"
        )
    return ApiRequest(
        api="embeddings", model=model, prompt="\n\n".join(inputs), text="".join(inputs),
        inputs=tuple(inputs),
    )  # fmt: skip


def _completions(data: dict[str, Any], model: str) -> ApiRequest:
    raw = data.get("prompt")
    prompt = (
        raw
        if isinstance(raw, str)
        else "\n\n".join(map(str, raw or []))
        if isinstance(raw, list)
        else None
    )
    if prompt is None:
        raise RequestError("Missing required parameter: 'prompt'.", param="prompt", code="missing")
    return ApiRequest(
        api="completions",
        model=model,
        prompt=prompt,
        text=prompt,
        stream=data.get("stream") is True,
        max_output_tokens=_positive_int(data.get("max_tokens"), "max_tokens"),
    )


def _tools(data: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    tools = data.get("tools")
    return tuple(t for t in tools if isinstance(t, dict)) if isinstance(tools, list) else ()


def _format(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) and value.get("type") != "text" else None


def _responses(data: dict[str, Any], model: str) -> ApiRequest:
    raw = data.get("input")
    if raw is None:
        raise RequestError("Missing required parameter: 'input'.", param="input", code="missing")
    if isinstance(raw, str):
        user, everything = [raw], [raw]
    elif isinstance(raw, list):
        user = [_text(item.get("content")) for item in raw if _is_user(item)]
        everything = [_text(item.get("content", item.get("output"))) for item in raw if _is(item)]
    else:
        raise RequestError(
            "Invalid type for 'input': expected a string or an array.", param="input"
        )
    instructions = data.get("instructions") if isinstance(data.get("instructions"), str) else None
    reasoning = data.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    return ApiRequest(
        api="responses",
        model=model,
        prompt="\n\n".join(user),
        text="\n\n".join([instructions or "", *everything]),
        instructions=instructions,
        stream=data.get("stream") is True,
        max_output_tokens=_positive_int(data.get("max_output_tokens"), "max_output_tokens"),
        reasoning_effort=effort if isinstance(effort, str) else None,
        tools=_tools(data),
        tool_choice=data.get("tool_choice"),
        answered_tools=isinstance(raw, list)
        and any(isinstance(i, dict) and i.get("type") == "function_call_output" for i in raw),
        format=_format(data["text"].get("format")) if isinstance(data.get("text"), dict) else None,
    )


def _chat(data: dict[str, Any], model: str) -> ApiRequest:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            "Missing required parameter: 'messages'.", param="messages", code="missing"
        )
    user = [_text(m.get("content")) for m in messages if _is_user(m)]
    everything = [_text(m.get("content")) for m in messages if _is(m)]
    options = data.get("stream_options")
    limit = data.get("max_completion_tokens", data.get("max_tokens"))
    effort = data.get("reasoning_effort")
    return ApiRequest(
        api="chat",
        model=model,
        prompt="\n\n".join(user),
        text="\n\n".join(everything),
        stream=data.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        max_output_tokens=_positive_int(limit, "max_completion_tokens"),
        reasoning_effort=effort if isinstance(effort, str) else None,
        tools=_tools(data),
        tool_choice=data.get("tool_choice"),
        answered_tools=any(isinstance(m, dict) and m.get("role") == "tool" for m in messages),
        format=_format(data.get("response_format")),
    )


def _is(item: object) -> bool:
    return isinstance(item, dict)


def _is_user(item: object) -> bool:
    return isinstance(item, dict) and item.get("role", "user") == "user"


def _text(content: object) -> str:
    """The text of a message's content: a string, or the ``text`` of each of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p["text"]) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _positive_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RequestError(f"Invalid '{name}': expected an integer of at least 1.", param=name)
    return value


__all__ = ["Api", "ApiRequest", "RequestError", "json_object", "parse_request"]
