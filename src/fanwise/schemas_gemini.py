"""Structured outputs on Gemini's own ``generateContent``: ``generationConfig.responseJsonSchema``.

Gemini takes a schema two ways: ``responseSchema`` (an OpenAPI subset: no ``additionalProperties``,
no type lists) and ``responseJsonSchema`` (JSON Schema, Gemini 2.5 and later), each with
``responseMimeType: "application/json"``. fanwise sends the second, as the strict schema it
validates with; a body that already asks for either is sent as written and its schema checks the
answer. (Through Google's OpenAI-compatible endpoint, a schema is Chat's ``response_format``.)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fanwise.schemas import Schema

JSON_MIME = "application/json"


def generate_with_schema(body: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """A ``generateContent`` body asking for ``schema``; the caller's config fields kept."""
    config = dict(body.get("generationConfig") or {})
    config.setdefault("responseMimeType", JSON_MIME)
    if "responseSchema" not in config:
        config.setdefault("responseJsonSchema", copy.deepcopy(dict(schema.json_schema)))
    body["generationConfig"] = config
    return body


def generate_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The schema a ``generateContent`` body asks for, either form, if any."""
    config = body.get("generationConfig")
    if not isinstance(config, Mapping):
        return None
    for key in ("responseJsonSchema", "responseSchema"):
        schema = config.get(key)
        if isinstance(schema, Mapping):
            return _lowered(schema) if key == "responseSchema" else schema
    return None


def _lowered(node: Any) -> Any:
    """``responseSchema``'s OpenAPI types (``"OBJECT"``) as JSON Schema's (``"object"``)."""
    if isinstance(node, list):
        return [_lowered(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {name: _lowered(sub) for name, sub in value.items()}
        else:
            out[key] = _lowered(value)
    if isinstance(out.get("type"), str):
        out["type"] = out["type"].lower()
    if out.pop("nullable", False) is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


__all__ = ["JSON_MIME", "generate_schema", "generate_with_schema"]
