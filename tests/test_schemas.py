"""Structured outputs: strict conversion, validation messages, repair bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, Field

from fanwise.schema_example import example
from fanwise.schemas import (
    Schema,
    SchemaError,
    SchemaViolation,
    repair_body,
    schema_of_body,
    to_strict,
    with_schema,
)


class Place(BaseModel):
    name: str
    district: str | None = None


class Guide(BaseModel):
    city: str
    score: int = Field(ge=0, le=10)
    places: list[Place]
    best: Place


ANSWER_SCHEMA: dict[str, Any] = {
    "title": "Answer",
    "type": "object",
    "properties": {"summary": {"type": "string"}, "score": {"type": "integer", "minimum": 0}},
    "required": ["summary"],
}


def _objects(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append(node)
        for value in node.values():
            found += _objects(value)
    elif isinstance(node, list):
        for value in node:
            found += _objects(value)
    return found


def test_pydantic_model_becomes_strict_everywhere() -> None:
    """Every object of a converted model requires all its properties and allows no others."""
    schema = Schema.of(Guide)
    objects = _objects(dict(schema.json_schema))
    assert len(objects) >= 2
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])
    assert schema.name == "Guide"


def test_ref_with_siblings_is_inlined_and_none_default_dropped() -> None:
    """A $ref carrying a description is inlined; a None default is removed, as the API needs."""
    raw: dict[str, Any] = {
        "type": "object",
        "properties": {
            "where": {"$ref": "#/$defs/Place", "description": "the spot"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "$defs": {"Place": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    strict = to_strict(raw)
    where = strict["properties"]["where"]
    assert "$ref" not in where
    assert where["description"] == "the spot"
    assert where["additionalProperties"] is False
    assert "default" not in strict["properties"]["note"]
    assert "additionalProperties" not in raw["$defs"]["Place"], "the input is not mutated"


def test_model_parse_returns_instance_and_names_the_bad_field() -> None:
    """A valid answer parses to the model; a bad one names the field path and the rule broken."""
    schema = Schema.of(Guide)
    good = (
        '{"city":"Kyoto","score":9,"places":[{"name":"Gion","district":null}],'
        '"best":{"name":"Gion","district":"Higashiyama"}}'
    )
    value = schema.parse(good)
    assert isinstance(value, Guide) and value.best.district == "Higashiyama"
    assert schema.to_json(value)["places"][0]["name"] == "Gion"
    with pytest.raises(SchemaViolation, match=r"score: .*less than or equal to 10"):
        schema.parse(good.replace('"score":9', '"score":11'))
    with pytest.raises(SchemaViolation, match="not valid JSON"):
        schema.parse("Sure! Here is the JSON: {")


def test_dict_schema_validates_and_reports_paths() -> None:
    """A JSON Schema dict validates answers and says which path broke which rule."""
    schema = Schema.of(ANSWER_SCHEMA)
    assert schema.name == "Answer"
    assert schema.parse('{"summary": "ok", "score": 3}') == {"summary": "ok", "score": 3}
    with pytest.raises(SchemaViolation, match="score: -1 is less than the minimum of 0"):
        schema.parse('{"summary": "ok", "score": -1}')
    with pytest.raises(SchemaViolation, match="'score' is a required property"):
        schema.parse('{"summary": "ok"}')  # strict form: every property is required
    with pytest.raises(SchemaViolation, match="Additional properties"):
        schema.parse('{"summary": "ok", "score": 1, "extra": true}')


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"type": "object", "properties": {"a": {"type": "strng"}}}, "properties/a/type"),
        ({"type": "array", "items": {"type": "string"}}, "object at the top level"),
        ({"type": "object", "required": "a"}, "required"),
    ],
)
def test_invalid_json_schema_is_refused_with_where(bad: dict[str, Any], reason: str) -> None:
    """A dict that is not a JSON Schema the API can take is refused, saying where."""
    with pytest.raises(SchemaError, match=reason):
        Schema.of(bad)


def test_not_a_schema_is_refused() -> None:
    """Something that is neither a model class nor a dict is refused by name."""
    with pytest.raises(SchemaError, match="pydantic model class or a JSON Schema dict"):
        Schema.of(42)  # type: ignore[arg-type]


def test_with_schema_puts_the_format_where_each_api_reads_it() -> None:
    """Responses gets text.format (other text fields kept); Chat gets response_format."""
    schema = Schema.of(ANSWER_SCHEMA)
    body = {"model": "gpt-5", "input": "hi", "text": {"verbosity": "low"}}
    sent = with_schema("responses", body, schema)
    assert sent["text"]["verbosity"] == "low"
    assert sent["text"]["format"]["strict"] is True
    assert sent["text"]["format"]["type"] == "json_schema"
    assert body == {"model": "gpt-5", "input": "hi", "text": {"verbosity": "low"}}
    chat = with_schema("chat.completions", {"model": "gpt-5", "messages": []}, schema)
    assert chat["response_format"]["json_schema"]["strict"] is True
    assert schema_of_body("chat.completions", chat) == schema.json_schema
    assert schema_of_body("responses", sent) == schema.json_schema
    assert schema_of_body("responses", body) is None
    with pytest.raises(SchemaError):
        with_schema("embeddings", {}, schema)


def test_with_schema_keeps_a_format_the_caller_set() -> None:
    """A response_format the user wrote is never rewritten."""
    own = {"type": "json_object"}
    body = with_schema("chat.completions", {"response_format": own}, Schema.of(ANSWER_SCHEMA))
    assert body["response_format"] == own


def test_repair_body_appends_answer_and_error_for_both_apis() -> None:
    """The retry keeps the conversation, adds the bad answer and the error (instructor's way)."""
    responses = repair_body("responses", {"input": "Rate Kyoto"}, "{bad", "not valid JSON")
    assert responses["input"][0] == {"role": "user", "content": "Rate Kyoto"}
    assert responses["input"][1] == {"role": "assistant", "content": "{bad"}
    assert "not valid JSON" in responses["input"][2]["content"]
    chat_in = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
    chat = repair_body("chat.completions", chat_in, "{bad", "score: too big")
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "user"]
    assert len(chat_in["messages"]) == 2, "the original body is not mutated"


@pytest.mark.parametrize("seed", ["a", "b", "c", "d"])
def test_example_satisfies_the_schema(seed: str) -> None:
    """The offline model's and simulator's answers pass the very validation fanwise applies."""
    for source in (Guide, ANSWER_SCHEMA):
        schema = Schema.of(source)
        value = example(schema.json_schema, seed=seed, text="Kyoto")
        schema.parse(json.dumps(value))


LISTS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "names": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 8},
        "short": {
            "type": "array",
            "items": {"type": "string", "maxLength": 4},
            "minItems": 5,
            "maxItems": 5,
            "uniqueItems": True,
        },
        "colours": {
            "type": "array",
            "items": {"enum": ["red", "green", "blue"]},
            "minItems": 3,
            "maxItems": 3,
            "uniqueItems": True,
        },
        "scores": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": 4},
            "minItems": 4,
            "uniqueItems": True,
        },
        "places": {"type": "array", "items": {"$ref": "#/$defs/Place"}, "minItems": 2},
        "flags": {"type": "array", "items": {"type": "boolean"}, "minItems": 3, "maxItems": 3},
    },
    "$defs": {"Place": {"type": "object", "properties": {"name": {"type": "string"}}}},
}


@pytest.mark.parametrize("seed", ["a", "b", "c", "d"])
def test_example_lists_have_distinct_items_and_keep_their_bounds(seed: str) -> None:
    """A list's items differ (strings, enums, numbers, objects), within min/maxItems, maxLength
    and uniqueItems; only two booleans cannot fill three places without a repeat."""
    from jsonschema import validate

    value = example(LISTS, seed=seed, text="Kyoto")
    validate(value, LISTS)
    assert value == example(LISTS, seed=seed, text="Kyoto")
    for key in ("names", "short", "colours", "scores", "places"):
        items = [json.dumps(item) for item in value[key]]
        assert len(set(items)) == len(items), (key, items)
    assert value["names"][1] == "names 2: Kyoto"
    assert len(value["flags"]) == 3


def test_refused_is_final_and_failed_attempt_usage_survives_json() -> None:
    """A refusal is never retried, and the tokens a failed attempt cost survive the journal."""
    from fanwise.outcome import ErrorKind, Refused, error_from_dict, error_to_dict, is_retryable

    error = Refused("I can't help with that", usage={"input_tokens": 12, "output_tokens": 3})
    assert not is_retryable(error)
    data = error_to_dict(error)
    assert data["kind"] == "refused" and data["usage"]["output_tokens"] == 3
    again = error_from_dict(data)
    assert again.kind is ErrorKind.REFUSED and again.usage == error.usage
