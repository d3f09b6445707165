"""Tool calls and structured outputs, simulated: a call to the tool offered, JSON to the schema.

A request that offers function tools (and has no tool result yet, and does not say
``tool_choice: "none"``) gets a call to the one it names, or to the first, with arguments made
from the tool's ``parameters`` schema. A request that asks for ``json_schema`` output (Chat's
``response_format``, the Responses API's ``text.format``) gets an instance of that schema; one
that asks for ``json_object`` gets ``{"answer": ...}``. Deterministic: the same request, the
same call or JSON.

Two scripted faults are answers too (a 200): ``schema`` answers JSON that breaks the schema the
request asked for (the first required property left out), ``refuse`` a refusal instead of text.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from fanwise.schema_example import example
from fanwise.simulator.request import ApiRequest

if TYPE_CHECKING:
    from fanwise.simulator.answer import Answer

STRUCTURED_FAULTS = ("schema", "refuse")
REFUSAL = "I'm sorry, but I can't help with that request. (simulated)"


def tool_call(req: ApiRequest) -> tuple[str, str] | None:
    """``(name, arguments)`` of the function the answer calls, or None for a text answer."""
    if req.answered_tools or req.tool_choice == "none":
        return None
    functions: dict[str, Any] = {}
    for tool in req.tools:
        if tool.get("type") != "function":
            continue
        spec: dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
        if isinstance(spec.get("name"), str):
            functions[spec["name"]] = spec.get("parameters") or {"type": "object"}
    if not functions:
        return None
    choice = req.tool_choice
    named: Any = None
    if isinstance(choice, dict):
        named = choice.get("name") or (choice.get("function") or {}).get("name")
    name: str = named if named in functions else next(iter(functions))
    arguments = instance(functions[name], req.prompt)
    return name, json.dumps(arguments, separators=(",", ":"))


def formatted(req: ApiRequest, text: str) -> str:
    """The answer's text in the format the request asked for (unchanged for plain text)."""
    fmt = req.format
    if fmt is None:
        return text
    if fmt.get("type") == "json_object":
        return json.dumps({"answer": text})
    if fmt.get("type") == "json_schema":
        spec: dict[str, Any] = (
            fmt["json_schema"] if isinstance(fmt.get("json_schema"), dict) else fmt
        )
        schema: dict[str, Any] = spec["schema"] if isinstance(spec.get("schema"), dict) else {}
        return json.dumps(example(schema, seed=text, text=" ".join(text.split())[:60]))
    return text


def misanswer(req: ApiRequest, answer: Answer, fault: str) -> Answer:
    """``answer`` as the ``schema`` or ``refuse`` fault makes it (still a 200)."""
    if fault == "refuse":
        return dataclasses.replace(answer, text="", tool=None, refusal=REFUSAL, output_tokens=12)
    if answer.tool is not None:  # a forced tool (Anthropic's fallback): its input breaks instead
        name, arguments = answer.tool
        called = json.loads(arguments)
        if isinstance(called, dict) and called:
            called.pop(next(iter(called)))
        return dataclasses.replace(answer, tool=(name, json.dumps(called)))
    fmt = req.format or {}
    spec = fmt["json_schema"] if isinstance(fmt.get("json_schema"), dict) else fmt
    schema: dict[str, Any] = spec["schema"] if isinstance(spec.get("schema"), dict) else {}
    value = example(schema, seed=req.prompt, text=" ".join(req.prompt.split())[:60])
    if isinstance(value, dict) and value:
        value.pop(next(iter(value)))
        return dataclasses.replace(answer, text=json.dumps(value))
    return dataclasses.replace(answer, text="this is not JSON (simulated)")


def instance(schema: Any, text: str, depth: int = 0) -> Any:
    """A value that matches ``schema`` (the common JSON Schema keywords), built from ``text``."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return instance(schema[key][0], text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties: dict[str, Any] = (
            schema["properties"] if isinstance(schema.get("properties"), dict) else {}
        )
        return {name: instance(sub, text, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [instance(schema.get("items"), text, depth + 1)]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return " ".join(text.split())[:60]


__all__ = ["REFUSAL", "STRUCTURED_FAULTS", "formatted", "instance", "misanswer", "tool_call"]
