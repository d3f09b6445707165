"""``[[stage]]`` tables: a plan of stages, each checked with its ``file:line``.

::

    [[stage]]
    name = "outline"
    prompt = "List the main districts of {city}."
    schema = { type = "object", properties = { districts = { type = "array", ... } } }

    [[stage]]
    name = "districts"
    map = "outline.districts"          # one call per item: {item}, {index}
    prompt = "Describe {item}, a district of {city}."
    max_items = 8
    policy = "settled"                 # or "all"; quorum = 3; required = true

    [[stage]]
    name = "guide"
    prompt = "Write a guide to {city} from:\\n{districts}"
    cite = true
    context = ["city-notes.md"]        # optional: material placed before each of the stage's
                                       # prompts, cached by the provider (docs/caching.md)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fanwise.context import Material, plan_materials
from fanwise.plans.errors import PlanError
from fanwise.schemas import Schema, SchemaError, load_schema_file
from fanwise.stages.model import Stage, StageError, Workflow
from fanwise.stages.template import fill

STRINGS = ("name", "prompt", "map", "route", "pick", "judge", "model", "instructions", "policy")
LISTS = ("questions", "models")
NUMBERS = ("vote", "quorum", "max_items")
FLAGS = ("required", "cite")
KEYS = (*STRINGS, *LISTS, *NUMBERS, *FLAGS, "branches", "body", "schema", "context")
_HEADER = re.compile(r"^\s*\[")
_STAGE = re.compile(r"^\s*\[\[\s*stage\s*\]\]")
_SUBTABLE = re.compile(r"^\s*\[\s*stage\.")


class StageLines:
    """Where each ``[[stage]]`` table and its keys are in the plan's text."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source
        self.starts = [n for n, line in enumerate(self.lines, 1) if _STAGE.match(line)]

    def line(self, index: int, key: str | None = None) -> int | None:
        if index >= len(self.starts):
            return None
        start = self.starts[index]
        if key is None:
            return start
        for number in range(start + 1, len(self.lines) + 1):
            raw = self.lines[number - 1]
            if _HEADER.match(raw) and not _SUBTABLE.match(raw):
                break
            if re.match(rf"^\s*{re.escape(key)}\s*=", raw) or raw.strip() == f"[stage.{key}]":
                return number
        return start

    def fail(self, index: int, key: str | None, message: str) -> PlanError:
        return PlanError(self.source, message, self.line(index, key))


def parse_workflow(
    data: Mapping[str, Any],
    text: str,
    source: str,
    values: Mapping[str, str],
    *,
    base: Path,
    title: str,
    topic: str,
) -> Workflow:
    """The workflow a plan's ``[[stage]]`` tables describe; a bad one is a ``PlanError``."""
    where = StageLines(text, source)
    raw = data.get("stage")
    if not isinstance(raw, list) or not raw:
        raise PlanError(source, "'stage' must be [[stage]] tables", where.line(0))
    stages = []
    names: list[str] = []
    for index, table in enumerate(raw):
        if not isinstance(table, dict):
            raise where.fail(index, None, "every [[stage]] must be a table")
        fields = _fields(table, index, where, values, base)
        names.append(str(fields.get("name", "")))
        try:
            stages.append(Stage(**fields))
        except StageError as error:
            raise where.fail(index, error.key, str(error)) from None
    try:
        return Workflow(tuple(stages), title, topic)
    except StageError as error:
        index = names.index(error.stage) if error.stage in names else 0
        raise where.fail(index, error.key, str(error)) from None


def _fields(
    table: Mapping[str, Any],
    index: int,
    where: StageLines,
    values: Mapping[str, str],
    base: Path,
) -> dict[str, Any]:
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise where.fail(
            index, unknown[0], f"unknown key {unknown[0]!r} in [[stage]] (known: {', '.join(KEYS)})"
        )
    if not isinstance(table.get("name"), str):
        raise where.fail(index, None, "every [[stage]] needs a name, a string")
    fields: dict[str, Any] = {}
    for key, value in table.items():
        if key in STRINGS:
            if not isinstance(value, str):
                raise where.fail(index, key, f"{key!r} must be a string")
            fields[key] = fill(value, values)
        elif key in LISTS:
            if not _strings(value):
                raise where.fail(index, key, f"{key!r} must be a list of strings")
            fields[key] = tuple(fill(v, values) for v in value)
        elif key in NUMBERS:
            if not isinstance(value, int) or isinstance(value, bool):
                raise where.fail(index, key, f"{key!r} must be a whole number")
            fields[key] = value
        elif key in FLAGS:
            if not isinstance(value, bool):
                raise where.fail(index, key, f"{key!r} must be true or false")
            fields[key] = value
        elif key == "body":
            if not isinstance(value, dict):
                raise where.fail(index, key, "body must be a table of API body fields")
            fields[key] = dict(value)
        elif key == "branches":
            fields[key] = _branches(value, index, where)
        elif key == "context":
            fields[key] = _context(value, index, where, base)
        else:
            fields[key] = _schema(value, index, where, base)
    return fields


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _branches(value: Any, index: int, where: StageLines) -> dict[str, Sequence[str]]:
    if not isinstance(value, dict) or not value:
        raise where.fail(index, "branches", 'branches must be a table, e.g. { food = ["meal"] }')
    branches: dict[str, Sequence[str]] = {}
    for choice, names in value.items():
        names = [names] if isinstance(names, str) else names
        if not _strings(names):
            raise where.fail(index, "branches", f"branch {choice!r} must list stage names")
        branches[choice] = tuple(names)
    return branches


def _context(value: Any, index: int, where: StageLines, base: Path) -> tuple[Material, ...]:
    try:
        return plan_materials(value, base)
    except ValueError as error:
        raise where.fail(index, "context", str(error)) from None


def _schema(value: Any, index: int, where: StageLines, base: Path) -> Schema:
    try:
        if isinstance(value, str):
            return load_schema_file(base / value)
        if isinstance(value, dict):
            return Schema.of(value)
    except SchemaError as error:
        raise where.fail(index, "schema", f"schema: {error}") from None
    raise where.fail(index, "schema", "schema must be a JSON Schema table or a JSON file name")
