"""Structured outputs: a pydantic model or a JSON Schema, in the APIs' strict form, validated.

A :class:`Schema` is built once per question and does three jobs: it is sent (``text.format`` for
the Responses API, ``response_format`` for Chat Completions, both ``strict: true``), it checks an
answer (``parse``), and it words the repair message when an answer breaks it (``repair_body``).

The strict form is what OpenAI's structured outputs require: every object lists all its
properties as ``required`` and sets ``additionalProperties: false``; a ``$ref`` with siblings is
inlined. pydantic's own schema is converted the way the official SDK converts it, and so is a
user's JSON Schema dict, so both are accepted by ``strict: true``.

``jsonschema`` and pydantic are imported when a schema is first used: ``import fanwise`` stays
light (start-up is part of the product).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fanwise.outcome import FanwiseError

if TYPE_CHECKING:
    from pydantic import BaseModel

_NAME_OK = re.compile(r"[^a-zA-Z0-9_-]")


class SchemaError(FanwiseError, ValueError):
    """A schema that the API would refuse, said with where and why, before any call is made."""


class SchemaViolation(FanwiseError, ValueError):
    """An answer that is not JSON, or is JSON that breaks its schema; the message says where."""


@dataclass(frozen=True, slots=True, eq=False)
class Schema:
    """One output schema: its name, its strict JSON Schema, and the pydantic model, if any."""

    name: str
    json_schema: Mapping[str, Any]
    model: type[BaseModel] | None = None
    _validate: Callable[[Any], None] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, source: type[BaseModel] | Mapping[str, Any] | Schema, *, name: str = "") -> Schema:
        """A schema from a pydantic model class or a JSON Schema dict (checked here, not later)."""
        if isinstance(source, Schema):
            return source
        if isinstance(source, Mapping):
            return cls.from_json_schema(source, name=name)
        if isinstance(source, type) and _is_pydantic_model(source):
            return cls.from_model(source, name=name)
        raise SchemaError(
            f"a schema must be a pydantic model class or a JSON Schema dict, not {source!r}"
        )

    @classmethod
    def from_model(cls, model: type[BaseModel], *, name: str = "") -> Schema:
        raw = model.model_json_schema()
        return cls(
            name=_clean_name(name or model.__name__),
            json_schema=to_strict(raw),
            model=model,
        )

    @classmethod
    def from_json_schema(cls, schema: Mapping[str, Any], *, name: str = "") -> Schema:
        check_json_schema(schema)
        strict = to_strict(schema)
        title = strict.get("title")
        return cls(
            name=_clean_name(name or (title if isinstance(title, str) else "") or "answer"),
            json_schema=strict,
            _validate=_json_schema_validator(strict),
        )

    def responses_format(self) -> dict[str, Any]:
        """The Responses API's ``text.format``."""
        return {
            "type": "json_schema",
            "name": self.name,
            "schema": copy.deepcopy(dict(self.json_schema)),
            "strict": True,
        }

    def chat_format(self) -> dict[str, Any]:
        """Chat Completions' ``response_format``."""
        return {
            "type": "json_schema",
            "json_schema": {
                "name": self.name,
                "schema": copy.deepcopy(dict(self.json_schema)),
                "strict": True,
            },
        }

    def parse(self, text: str) -> Any:
        """The validated value: a pydantic instance, or the JSON value for a dict schema."""
        if self.model is not None:
            return _parse_with_model(self.model, text)
        try:
            value = json.loads(text)
        except ValueError as error:
            raise SchemaViolation(f"the answer is not valid JSON: {error}") from None
        if self._validate is not None:
            self._validate(value)
        return value

    def to_json(self, value: Any) -> Any:
        """A parsed value as plain JSON data (a pydantic instance is dumped)."""
        if self.model is not None and hasattr(value, "model_dump"):
            return value.model_dump(mode="json")
        return value


def load_schema_file(path: str | os.PathLike[str]) -> Schema:
    """The JSON Schema in the file at ``path``; ``SchemaError`` says why one cannot be used."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SchemaError("not UTF-8 text") from None
    except OSError as error:
        raise SchemaError(f"cannot read it: {error.strerror or error}") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise SchemaError(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise SchemaError("a JSON Schema must be a JSON object")
    return Schema.from_json_schema(data, name=Path(path).stem.split(".")[0])


def body_schema(endpoint: str, body: Mapping[str, Any]) -> Schema | None:
    """The schema a request body asks for, as written (not made strict): to check its answer."""
    found = schema_of_body(endpoint, body)
    if found is None:
        return None
    name = "answer"
    if endpoint == "messages":  # a forced tool's answer is read by the tool's name
        from fanwise.schemas_anthropic import forced_tool

        name = forced_tool(body) or name
    return Schema(name=name, json_schema=found, _validate=_json_schema_validator(found))


def schema_to_dict(schema: Schema | None) -> dict[str, Any] | None:
    """A schema as JSON data (its name and strict JSON Schema); ``schema_from_dict`` reads it."""
    if schema is None:
        return None
    return {"name": schema.name, "schema": copy.deepcopy(dict(schema.json_schema))}


def schema_from_dict(data: Mapping[str, Any] | None) -> Schema | None:
    """A schema from ``schema_to_dict``'s data: a pydantic model's comes back as its JSON Schema."""
    if not data:
        return None
    return Schema.from_json_schema(data["schema"], name=str(data.get("name", "")))


STRUCTURED_ENDPOINTS = ("responses", "chat.completions", "messages", "generateContent")
"""The APIs a schema can be asked of; completions and embeddings have no structured outputs."""


def with_schema(endpoint: str, body: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """``body`` asking for ``schema`` on ``endpoint``; fields the caller set are left as they are.

    The format goes where each API reads it: ``text.format`` (Responses, keeping other ``text``
    fields such as ``verbosity``), ``response_format`` (Chat Completions, Gemini's compatible
    endpoint included), Anthropic's ``output_config.format`` or its forced-tool fallback
    (``schemas_anthropic``), Gemini's ``generationConfig.responseJsonSchema``. ``SchemaError``
    when the API has no structured outputs (said before any request is made).
    """
    out = dict(body)
    if endpoint == "responses":
        text = dict(out.get("text") or {})
        text.setdefault("format", schema.responses_format())
        out["text"] = text
    elif endpoint == "chat.completions":
        out.setdefault("response_format", schema.chat_format())
    elif endpoint == "messages":
        from fanwise.schemas_anthropic import Unavailable, messages_with_schema

        try:
            return messages_with_schema(out, schema)
        except Unavailable as error:
            raise SchemaError(str(error)) from None
    elif endpoint == "generateContent":
        from fanwise.schemas_gemini import generate_with_schema

        return generate_with_schema(out, schema)
    else:
        raise SchemaError(
            f"the {endpoint} API has no structured outputs: a schema needs the responses, "
            "chat, messages (Anthropic) or generateContent (Gemini) API"
        )
    return out


def schema_of_body(endpoint: str, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON Schema a body asks for (``text.format``, ``response_format``, Anthropic's
    ``output_config.format`` or forced tool, Gemini's ``responseJsonSchema``), if it asks."""
    if endpoint == "messages":
        from fanwise.schemas_anthropic import messages_schema

        return messages_schema(body)
    if endpoint == "generateContent":
        from fanwise.schemas_gemini import generate_schema

        return generate_schema(body)
    if endpoint == "responses":
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, Mapping) else None
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            schema = fmt.get("schema")
            return schema if isinstance(schema, Mapping) else None
    elif endpoint == "chat.completions":
        fmt = body.get("response_format")
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            inner = fmt.get("json_schema")
            schema = inner.get("schema") if isinstance(inner, Mapping) else None
            return schema if isinstance(schema, Mapping) else None
    return None


REPAIR_TEMPLATE = (
    "Your previous answer did not match the required JSON schema: {error}\n"
    "Answer again with only JSON that matches the schema exactly."
)


def repair_body(endpoint: str, body: Mapping[str, Any], answer: str, error: str) -> dict[str, Any]:
    """``body`` with the bad answer and the validation error appended: the instructor approach.

    The conversation so far is kept whole; the model sees what it said and what was wrong.
    """
    note = REPAIR_TEMPLATE.format(error=error)
    out = dict(body)
    if endpoint == "responses":
        prior = out.get("input")
        items: list[Any] = (
            [{"role": "user", "content": prior}] if isinstance(prior, str) else list(prior or [])
        )
        items += [{"role": "assistant", "content": answer}, {"role": "user", "content": note}]
        out["input"] = items
    elif endpoint in ("chat.completions", "messages"):
        messages = list(out.get("messages") or [])
        messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": note}]
        out["messages"] = messages
    elif endpoint == "generateContent":
        contents = list(out.get("contents") or [])
        contents += [
            {"role": "model", "parts": [{"text": answer}]},
            {"role": "user", "parts": [{"text": note}]},
        ]
        out["contents"] = contents
    else:
        raise SchemaError(f"the {endpoint} API has no structured outputs")
    return out


def to_strict(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` in the strict form (the official SDK's rules, on a deep copy)."""
    root = copy.deepcopy(dict(schema))
    return _strict(root, root)


def _strict(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    for defs_key in ("$defs", "definitions"):
        defs = node.get(defs_key)
        if isinstance(defs, dict):
            for key, sub in defs.items():
                if isinstance(sub, dict):
                    defs[key] = _strict(sub, root)
    if node.get("type") == "object" and "additionalProperties" not in node:
        node["additionalProperties"] = False
    properties = node.get("properties")
    if isinstance(properties, dict):
        node["required"] = list(properties)
        node["properties"] = {
            key: _strict(sub, root) if isinstance(sub, dict) else sub
            for key, sub in properties.items()
        }
    items = node.get("items")
    if isinstance(items, dict):
        node["items"] = _strict(items, root)
    for union in ("anyOf", "oneOf"):
        variants = node.get(union)
        if isinstance(variants, list):
            node[union] = [_strict(v, root) if isinstance(v, dict) else v for v in variants]
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1 and isinstance(all_of[0], dict):
            node.pop("allOf")
            node.update(_strict(all_of[0], root))
        else:
            node["allOf"] = [_strict(v, root) if isinstance(v, dict) else v for v in all_of]
    if "default" in node and node["default"] is None:
        node.pop("default")
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:
        # The API takes a $ref only on its own: inline it, the node's own keys winning.
        resolved = resolve_ref(root, ref)
        merged = {**resolved, **node}
        merged.pop("$ref")
        node.clear()
        node.update(merged)
        return _strict(node, root)
    return node


def resolve_ref(root: Mapping[str, Any], ref: str) -> dict[str, Any]:
    """A copy of the schema object the local ``$ref`` (``#/...``) points at in ``root``."""
    if not ref.startswith("#/"):
        raise SchemaError(f"$ref {ref!r}: only local references (#/...) are supported")
    target: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(target, Mapping) or part not in target:
            raise SchemaError(f"$ref {ref!r} points at nothing in the schema")
        target = target[part]
    if not isinstance(target, Mapping):
        raise SchemaError(f"$ref {ref!r} does not point at a schema object")
    return copy.deepcopy(dict(target))


def check_json_schema(schema: Mapping[str, Any]) -> None:
    """Refuse, with the reason, a dict that is not a JSON Schema the API could take."""
    from jsonschema import exceptions, validators

    if not isinstance(schema, Mapping):
        raise SchemaError("a JSON Schema must be a JSON object")
    cls = validators.validator_for(schema)
    try:
        cls.check_schema(dict(schema))
    except exceptions.SchemaError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise SchemaError(f"not a valid JSON Schema at {where}: {error.message}") from None
    if schema.get("type") != "object":
        raise SchemaError(
            'structured outputs need an object at the top level ("type": "object"), '
            f"not {schema.get('type', 'a schema without a type')!r}"
        )


def _json_schema_validator(schema: Mapping[str, Any]) -> Callable[[Any], None]:
    from jsonschema import validators

    validator = validators.validator_for(schema)(schema)

    def validate(value: Any) -> None:
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            raise SchemaViolation("; ".join(_describe(e.absolute_path, e.message) for e in errors))

    return validate


def _parse_with_model(model: type[BaseModel], text: str) -> BaseModel:
    from pydantic import ValidationError

    try:
        return model.model_validate_json(text)
    except ValidationError as error:
        if any(e["type"] == "json_invalid" for e in error.errors()):
            message = error.errors()[0]["msg"]
            raise SchemaViolation(f"the answer is not valid JSON: {message}") from None
        raise SchemaViolation(
            "; ".join(_describe(e["loc"], e["msg"]) for e in error.errors())
        ) from None


def _describe(path: Any, message: str) -> str:
    where = ".".join(str(p) for p in path)
    return f"{where}: {message}" if where else message


def _clean_name(name: str) -> str:
    """The API's schema name: letters, digits, ``_`` and ``-``, at most 64 characters."""
    return _NAME_OK.sub("_", name)[:64] or "answer"


def _is_pydantic_model(obj: type) -> bool:
    import sys

    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(obj, pydantic.BaseModel)
