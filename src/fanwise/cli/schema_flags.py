"""``--schema`` and ``--synthesis-schema``: JSON Schema files for a workflow's answers.

Each file is read and checked when the command starts, so a bad one ends the run before any
request is paid for (exit 2, the file and the reason).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import click

from fanwise.cli.errors import InputError
from fanwise.schemas import Schema, SchemaError, load_schema_file
from fanwise.stages.research import Plan

F = TypeVar("F", bound=Callable[..., Any])


def schema_options(command: F) -> F:
    """The two flags, on a command that runs a workflow."""
    command = click.option(
        "--synthesis-schema",
        metavar="FILE.json",
        help="A JSON Schema the synthesis must answer in (validated; parsed in --json).",
    )(command)
    return click.option(
        "--schema",
        metavar="FILE.json",
        help="A JSON Schema every research answer must follow (structured outputs, strict; "
        "an answer that breaks it is retried).",
    )(command)


def read_schema(flag: str, path: str) -> Schema:
    """The schema in ``path``, or the usage error that names the flag, the file and the reason."""
    try:
        return load_schema_file(path)
    except SchemaError as error:
        raise InputError(f"{flag} {path}: {error}") from None


def check_schemas(check: Callable[[], None]) -> None:
    """Run a plan's structured-outputs check; what its APIs cannot do is a usage error (exit 2)
    before any request, not a traceback once the research has been paid for."""
    try:
        check()
    except SchemaError as error:
        raise InputError(f"structured outputs: {error}") from None


def apply_schema_flags(plan: Plan, kwargs: dict[str, Any]) -> Plan:
    """``plan`` with the schemas the flags name (taken out of ``kwargs``); the flags win."""
    research, synthesis = kwargs.pop("schema", None), kwargs.pop("synthesis_schema", None)
    changes: dict[str, Any] = {}
    if research:  # every research answer: over a plan's per-question schemas too
        changes["schema"] = read_schema("--schema", research)
        changes["question_schemas"] = ()
    if synthesis:
        changes["synthesis_schema"] = read_schema("--synthesis-schema", synthesis)
    return dataclasses.replace(plan, **changes) if changes else plan


__all__ = ["apply_schema_flags", "check_schemas", "read_schema", "schema_options"]
