"""Input lines of a batch file, read one at a time into requests; a bad line says what and where.

Two shapes are accepted. OpenAI's batch-file format, every line the Batch API takes::

    {"custom_id": "r1", "method": "POST", "url": "/v1/responses",
     "body": {"model": "gpt-5-mini", "input": "Why is the sky blue?"}}
    {"custom_id": "r2", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}],
              "tools": [...], "response_format": {...}, "seed": 7}}
    {"custom_id": "r3", "method": "POST", "url": "/v1/embeddings",
     "body": {"model": "text-embedding-3-small", "input": ["a", "b"]}}

Its body goes to its url exactly as written (fanwise adds only a missing ``model``, from
``--model``). Gemini's own API is a line too, its model in the url as Google's REST API has it,
its body a ``GenerateContentRequest`` (or ``EmbedContentRequest``) sent unchanged::

    {"custom_id": "g1", "method": "POST", "url": "/v1beta/models/gemini-2.5-flash:generateContent",
     "body": {"contents": [{"role": "user", "parts": [{"text": "Why is the sky blue?"}]}]}}
 A line is refused, by number, for what the Batch API refuses: not UTF-8, not
JSON, not an object, a missing or duplicate ``custom_id``, a ``method`` other than POST, a
``url`` other than ``/v1/responses``, ``/v1/chat/completions``, ``/v1/embeddings`` or
``/v1/completions``, a ``body`` that is not an object or asks for a stream. Anything else in
the body is for the endpoint to judge, as it would be in a real batch.

And a plain line, whose missing settings come from the command's flags::

    {"prompt": "Why is the sky blue?", "custom_id": "r4", "model": "gpt-5-nano",
     "system": "Answer in one sentence."}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fanwise.models.base import Endpoint, Request
from fanwise.models.settings import ModelSettings
from fanwise.outcome import FanwiseError

URLS = tuple(e.url.replace("{model}", "MODEL") for e in Endpoint)
BATCH_FIELDS = frozenset({"custom_id", "method", "url", "body"})
PLAIN_FIELDS = frozenset(
    {"prompt", "custom_id", "model", "instructions", "system", "reasoning_effort"}
    | {"max_output_tokens", "temperature"}
)


class _Bad(Exception):
    """What is wrong with a line, before its number is attached."""


class LineError(FanwiseError, ValueError):
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


@dataclass(slots=True)
class LineReader:
    """Reads a file's lines in order; it remembers the custom_ids seen, to refuse a repeat.

    ``instructions`` (``--instructions``) is the system text of every plain line that has none.
    """

    defaults: ModelSettings = field(default_factory=ModelSettings)
    instructions: str | None = None
    seen: set[str] = field(default_factory=set)

    def read(self, raw: bytes | str, line: int) -> BatchLine:
        """One line as a request, or ``LineError``."""
        data = _object(raw, line)
        custom_id = data.get("custom_id")
        if custom_id is not None and not isinstance(custom_id, str):
            raise LineError(line, f"custom_id must be a string, got {json.dumps(custom_id)}")
        try:
            if "prompt" in data and not {"url", "body", "method"} & data.keys():
                request = self._plain(data)
            else:
                request = self._batch(data, custom_id)
        except _Bad as exc:
            raise LineError(line, str(exc), custom_id) from None
        if custom_id is not None:
            if custom_id in self.seen:
                raise LineError(
                    line, f"duplicate custom_id {custom_id!r}: each line needs its own", custom_id
                )
            self.seen.add(custom_id)
        return BatchLine(custom_id or f"line-{line}", request, line)

    def _batch(self, data: Mapping[str, Any], custom_id: str | None) -> Request:
        if not BATCH_FIELDS & data.keys():
            raise _Bad(
                'expected {"custom_id", "method": "POST", "url", "body"} (OpenAI batch format) '
                'or {"prompt": "..."}'
            )
        method = data.get("method")
        if method != "POST":
            got = "missing" if method is None else f"got {json.dumps(method)}"
            raise _Bad(f'method must be "POST" (the only one the Batch API takes), {got}')
        endpoint = Endpoint.from_url(data.get("url"))
        if endpoint is None:
            got = json.dumps(data["url"]) if "url" in data else "missing"
            raise _Bad(f"url must be one of {', '.join(URLS)}; {got}")
        body = data.get("body")
        if not isinstance(body, dict):
            raise _Bad("body must be a JSON object: the request the url is sent")
        if body.get("stream") is True:
            raise _Bad(
                "body.stream must not be true: a batch answer comes whole (the Batch API "
                "refuses a streamed request too)"
            )
        if custom_id is None:
            raise _Bad("custom_id is missing: every batch request line needs one")
        if endpoint.native:  # Gemini's own API: the model is the url's, sent in the path
            return Request(endpoint, body).with_defaults(model=Endpoint.model_in_url(data["url"]))
        return Request(endpoint, body).with_defaults(model=self.defaults.model)

    def _plain(self, data: Mapping[str, Any]) -> Request:
        unknown = sorted(set(data) - PLAIN_FIELDS)
        if unknown:
            raise _Bad(
                f"field {unknown[0]!r} is not one of a plain line's "
                f"({', '.join(sorted(PLAIN_FIELDS))}); for a whole API body use OpenAI's batch "
                'format: {"custom_id", "method": "POST", "url", "body"}'
            )
        if "instructions" in data and "system" in data:
            raise _Bad("give instructions or system, not both (they are the same thing)")
        defaults = self.defaults
        effort = _optional(data, "reasoning_effort") if "reasoning_effort" in data else None
        return Request.text(
            _text(data, "prompt"),
            model=_optional(data, "model") or defaults.model,
            instructions=(
                _optional(data, "instructions") or _optional(data, "system") or self.instructions
            ),
            reasoning_effort=effort if "reasoning_effort" in data else defaults.reasoning_effort,
            max_output_tokens=_tokens(data, "max_output_tokens") or defaults.max_output_tokens,
            temperature=(
                _number(data, "temperature") if "temperature" in data else defaults.temperature
            ),
            endpoint=defaults.endpoint,
        )


def parse_line(
    text: bytes | str, line: int, defaults: ModelSettings, instructions: str | None = None
) -> BatchLine:
    """One line read on its own (no duplicate check across lines): a request or ``LineError``."""
    return LineReader(defaults, instructions).read(text, line)


def _object(raw: bytes | str, line: int) -> dict[str, Any]:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LineError(
                line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
            ) from None
    if line == 1:
        raw = raw.removeprefix("\ufeff")  # a BOM some editors write is not part of line 1
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LineError(line, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise LineError(line, "not valid JSON here: arrays or objects nested too deeply") from None
    if not isinstance(data, dict):
        raise LineError(line, 'expected a JSON object, e.g. {"prompt": "..."}')
    return data


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{key} must be a non-empty string")
    return value


def _optional(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
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
