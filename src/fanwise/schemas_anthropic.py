"""Structured outputs on Anthropic's Messages API: ``output_config.format``, or a forced tool.

Claude 4.5 models and later (and Opus 4.1) take a JSON Schema in ``output_config.format``
(``{"type": "json_schema", "schema": ...}``) and answer with JSON text that follows it. That
form leaves out a few JSON Schema keywords (numeric and length bounds, item and property
counts): they are moved into the ``description``, as Anthropic's SDK does, and the answer is
still checked against the whole schema, so a bound broken is repaired like any other break.

Older models (Claude 3, Sonnet 4 and Opus 4) do not have it. For them the schema becomes the
one tool the request offers, ``tool_choice`` naming it: the model must call it, and the call's
``input`` is the answer (``structured.accept`` reads it). Anthropic does not allow a forced
tool with extended thinking, so that combination is refused before any request. A server
that refuses ``output_config.format`` with a 400 (a proxy, an older compatible server) gets the
same fallback (``FormatFallback``, in both Anthropic transports): the request goes again as a
forced tool, and later requests for that model go so at once.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from fanwise.models.base import Completion, Request

if TYPE_CHECKING:
    from fanwise.schemas import Schema

_WITHOUT_FORMAT = re.compile(
    r"^claude-(instant|2|3|(sonnet|opus)-4-0|(sonnet|opus)-4-\d{8}|(sonnet|opus)-4$)"
)
"""Models without ``output_config.format``: Claude 2 and 3, and the first Claude 4 pair."""
UNSUPPORTED = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "maxItems",
    "minProperties",
    "maxProperties",
)
"""Keywords ``output_config.format`` does not take (``minItems`` above 1 too)."""
TOOL_DESCRIPTION = "Give the answer: call this tool with the answer as its input."


class Unavailable(ValueError):
    """A schema this request cannot ask for (``schemas.with_schema`` says it as a SchemaError)."""


def has_output_format(model: str) -> bool:
    """Whether ``model`` takes ``output_config.format``; unknown names are assumed to."""
    return not _WITHOUT_FORMAT.match(model)


def messages_with_schema(body: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """A Messages body asking for ``schema``: the format where the model has it, else the tool.

    ``Unavailable`` for the forced tool with extended thinking (the API refuses it).
    """
    model = body.get("model") if isinstance(body.get("model"), str) else ""
    if has_output_format(str(model)):
        config = dict(body.get("output_config") or {})
        config.setdefault("format", {"type": "json_schema", "schema": output_schema(schema)})
        body["output_config"] = config
        return body
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping) and thinking.get("type") == "enabled":
        raise Unavailable(
            f"{model} has no output_config.format, and its fallback (a forced tool call) is not "
            "allowed with extended thinking: drop --reasoning-effort (or use minimal), or use a "
            "Claude 4.5 model"
        )
    tool = {
        "name": schema.name,
        "description": TOOL_DESCRIPTION,
        "input_schema": copy.deepcopy(dict(schema.json_schema)),
    }
    body["tools"] = [*(body.get("tools") or []), tool]
    body["tool_choice"] = {"type": "tool", "name": schema.name}
    return body


def output_schema(schema: Schema) -> dict[str, Any]:
    """The schema as ``output_config.format`` takes it: unsupported bounds moved to words."""
    moved: dict[str, Any] = _moved(copy.deepcopy(dict(schema.json_schema)))
    return moved


def _moved(node: Any) -> Any:
    if isinstance(node, list):
        return [_moved(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    bounds: dict[str, Any] = {}
    for key, value in node.items():
        if key in UNSUPPORTED or (key == "minItems" and isinstance(value, int) and value > 1):
            bounds[key] = value
        elif key == "$schema":
            continue
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: _moved(sub) for name, sub in value.items()}
        else:
            out[key] = _moved(value)
    if bounds:
        said = ", ".join(f"{k}: {json.dumps(v)}" for k, v in bounds.items())
        described = out.get("description")
        out["description"] = f"{described} ({{{said}}})" if described else f"{{{said}}}"
    return out


FALLBACK_TOOL = "structured_output"
"""The tool a refused ``output_config.format`` becomes (``FormatFallback``): its input is the
answer, whatever the schema's name."""


def without_output_format(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """``body`` with its JSON-schema format made the forced-tool fallback; None when it asks
    for none, or cannot (extended thinking forbids a forced tool)."""
    config = body.get("output_config")
    wanted = config.get("format") if isinstance(config, Mapping) else body.get("output_format")
    thinking = body.get("thinking")
    if not isinstance(wanted, Mapping) or wanted.get("type") != "json_schema":
        return None
    if isinstance(thinking, Mapping) and thinking.get("type") == "enabled":
        return None
    out = {k: v for k, v in body.items() if k != "output_format"}
    if isinstance(config, Mapping):
        rest = {k: v for k, v in config.items() if k != "format"}
        out.pop("output_config")
        if rest:
            out["output_config"] = rest
    tool = {"name": FALLBACK_TOOL, "description": TOOL_DESCRIPTION,
            "input_schema": wanted.get("schema") or {"type": "object"}}  # fmt: skip
    out["tools"] = [*(body.get("tools") or []), tool]
    out["tool_choice"] = {"type": "tool", "name": FALLBACK_TOOL}
    return out


def refuses_output_format(error: BaseException) -> bool:
    """Whether a server's 400 says it does not take structured outputs' format field."""
    status = getattr(error, "status_code", None)
    message = str(error).lower()
    return status == 400 and any(
        word in message for word in ("output_config", "output_format", "structured output")
    )


class FormatFallback:
    """The forced-tool fallback where a server refuses ``output_config.format``: the request
    goes again as a forced tool, and every later request for that model goes so at once.
    A body without a JSON-schema format, or whose server takes it, is sent as written."""

    def __init__(self) -> None:
        self.refused: set[str] = set()  # models whose server refused the format

    async def send(
        self, request: Request, attempt: Callable[[Request], Awaitable[Completion]]
    ) -> Completion:
        model = request.model
        fallback = without_output_format(request.body)
        if fallback is not None and model in self.refused:
            return await attempt(Request(request.endpoint, fallback))
        try:
            return await attempt(request)
        except Exception as error:
            if fallback is None or not refuses_output_format(error):
                raise
        self.refused.add(model)
        return await attempt(Request(request.endpoint, fallback))


def forced_tool(body: Mapping[str, Any]) -> str | None:
    """The tool a body's ``tool_choice`` forces (``{"type": "tool", "name": ...}``), if any."""
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "tool":
        name = choice.get("name")
        return name if isinstance(name, str) else None
    return None


def messages_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON Schema a Messages body asks for: ``output_config.format``, the beta
    ``output_format``, or the input schema of the one tool it forces."""
    config = body.get("output_config")
    wanted = config.get("format") if isinstance(config, Mapping) else None
    if wanted is None:
        wanted = body.get("output_format")
    if isinstance(wanted, Mapping) and wanted.get("type") == "json_schema":
        schema = wanted.get("schema")
        return schema if isinstance(schema, Mapping) else None
    name = forced_tool(body)
    for tool in body.get("tools") or [] if name else []:
        if isinstance(tool, Mapping) and tool.get("name") == name:
            schema = tool.get("input_schema")
            return schema if isinstance(schema, Mapping) else None
    return None


__all__ = [
    "FALLBACK_TOOL",
    "UNSUPPORTED",
    "FormatFallback",
    "Unavailable",
    "forced_tool",
    "has_output_format",
    "messages_schema",
    "messages_with_schema",
    "output_schema",
    "refuses_output_format",
    "without_output_format",
]
