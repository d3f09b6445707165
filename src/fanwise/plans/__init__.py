"""Plan files: a workflow written down in TOML, with ``{variables}`` filled in at run time.

A bad plan is reported as ``file:line: problem`` so that it can be fixed without guessing. The
travel workflow is itself a plan shipped inside the package (``travel``)::

    title = "travel guide"
    topic = "{destination}"
    [variables]
    destination = { help = "the place to write about" }   # no default: required
    [research]
    instructions = "..."                                    # optional
    body = { tools = [{ type = "web_search" }] }            # optional: API body fields
    questions = ["What to see in {destination}?", ...]      # or { text = "...", body = {...} }
    context = ["contract.md", { text = "..." }]             # optional: material every question
                                                            # is asked about (files next to the
                                                            # plan, or inline), sent once before
                                                            # each question, cached (caching.md)
    schema = "answer.schema.json"                           # optional: a JSON Schema for every
                                                            # answer (a file next to the plan,
                                                            # or inline { type = "object", ... });
                                                            # a question table may have its own
    # a question table may name its model(s): model = "claude-sonnet-4-5", or
    # models = ["gpt-5", "claude-sonnet-4-5", "gemini-2.5-pro"] (one answer per model)
    [synthesis]
    instructions = "..."                                    # optional
    body = { text = { verbosity = "low" } }                 # optional
    schema = "guide.schema.json"                            # optional
    [model]
    name = "gpt-5"                                          # all optional
    reasoning_effort = "minimal"
    endpoints = ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"]  # like --endpoints
"""

from __future__ import annotations

import difflib
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from fanwise.context import Material, plan_materials
from fanwise.endpoints import check_endpoint
from fanwise.plans.errors import PlanError as PlanError
from fanwise.schemas import Schema, SchemaError, load_schema_file
from fanwise.stages.model import Workflow
from fanwise.stages.research import DEFAULT_SYNTHESIS, Plan

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")
_SCHEMA: dict[str | None, set[str]] = {
    None: {
        *("title", "topic", "description", "variables", "research", "synthesis", "model"),
        "stage",
    },
    "research": {"questions", "instructions", "body", "schema", "context"},
    "synthesis": {"instructions", "body", "schema"},
    "model": {"name", "reasoning_effort", "max_output_tokens", "temperature", "endpoints"},
}


@dataclass(frozen=True, slots=True)
class LoadedPlan:
    plan: Plan
    model: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoadedWorkflow:
    """A plan of ``[[stage]]`` tables (docs/workflows.md)."""

    workflow: Workflow
    model: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)


def builtin_plans() -> list[str]:
    return sorted(
        p.name.removesuffix(".toml") for p in _builtin_dir().iterdir() if p.name.endswith(".toml")
    )


def load_plan(source: str | Path, variables: Mapping[str, str] | None = None) -> LoadedPlan:
    """Read a plan file (or a built-in plan by name) and fill in its variables."""
    text, label, base = _source(source)
    return parse_plan(text, label, variables or {}, base=base)


def load_any(
    source: str | Path, variables: Mapping[str, str] | None = None
) -> LoadedPlan | LoadedWorkflow:
    """A plan of ``[[stage]]`` tables as a workflow, or a ``[research]`` plan as before."""
    text, label, base = _source(source)
    return parse_any(text, label, variables or {}, base=base)


def _source(source: str | Path) -> tuple[str, str, Path]:
    """A plan's text, its label for errors, and the folder its schema files are read from."""
    path = Path(source)
    if not path.exists() and str(source) in builtin_plans():
        text = _builtin_dir().joinpath(f"{source}.toml").read_text(encoding="utf-8")
        return text, f"<built-in plan {source}>", Path()
    if path.is_file():
        return _read(path), str(source), path.parent
    if path.is_dir():
        raise PlanError(str(source), "is a directory; a plan is a .toml file (or a built-in name)")
    known = ", ".join(builtin_plans())
    raise PlanError(str(source), f"no such plan file (built-in plans: {known})")


def _read(path: Path) -> str:
    """The plan's text (a leading BOM is allowed); a clean error for bytes that are not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlanError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PlanError(
            str(path),
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the plan as UTF-8",
            line,
        ) from None


def parse_any(
    text: str, source: str, variables: Mapping[str, str], *, base: Path | None = None
) -> LoadedPlan | LoadedWorkflow:
    """``parse_plan``, or a workflow when the plan has ``[[stage]]`` tables."""
    data = _toml(text, source)
    if "stage" not in data:
        return parse_plan(text, source, variables, base=base)
    from fanwise.plans.stages import parse_workflow

    checker = _Checker(text, source, base or Path())
    checker.known_keys(data)
    for old in ("research", "synthesis"):
        if old in data:
            checker.fail(f"give [[stage]] tables or [{old}], not both", old)
    values = checker.bind(checker.variables(data.get("variables", {})), variables)
    topic = checker.fill(checker.string(data, None, "topic") or "", values, None, "topic")
    workflow = parse_workflow(
        data,
        text,
        source,
        values,
        base=base or Path(),
        title=checker.string(data, None, "title") or "workflow",
        topic=topic,
    )
    return LoadedWorkflow(workflow, checker.model(checker.table(data, "model")), values)


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise PlanError(source, "not valid TOML: arrays or tables nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise PlanError(
            source, f"not valid TOML: {message}", int(match[1]) if match else None
        ) from None


def parse_plan(
    text: str, source: str, variables: Mapping[str, str], *, base: Path | None = None
) -> LoadedPlan:
    """A plan from its TOML ``text``; a schema file it names is read relative to ``base``."""
    data = _toml(text, source)
    checker = _Checker(text, source, base or Path())
    checker.known_keys(data)
    if "stage" in data:
        raise PlanError(source, "this plan has [[stage]] tables: run it with fanwise run PLAN")
    declared = checker.variables(data.get("variables", {}))
    values = checker.bind(declared, variables)

    research = checker.table(data, "research", required=True)
    questions = research.get("questions")
    if not isinstance(questions, list) or not questions:
        checker.fail(
            "[research] needs 'questions', a non-empty list of strings", "research", "questions"
        )
    texts, bodies, schemas, models = [], [], [], []
    for question in questions:
        text, body = checker.question(question)
        texts.append(text)
        bodies.append(body)
        own = checker.schema(question, "research", text) if isinstance(question, dict) else None
        schemas.append(own)
        models.append(checker.question_models(question))
    topic = checker.string(data, None, "topic", required=True) or ""
    synthesis_table = checker.table(data, "synthesis")
    schema = checker.schema(research, "research")
    synthesis_schema = checker.schema(synthesis_table, "synthesis")
    try:
        plan = Plan(
            topic=checker.fill(topic, values, None, "topic"),
            questions=tuple(checker.fill(q, values, "research", "questions", q) for q in texts),
            research_body=checker.body(research, "research"),
            question_bodies=tuple(bodies) if any(bodies) else (),
            question_models=tuple(models) if any(models) else (),
            synthesis_body=checker.body(synthesis_table, "synthesis"),
            schema=schema,
            question_schemas=tuple(schemas) if any(schemas) else (),
            synthesis_schema=synthesis_schema,
            synthesis_instructions=checker.fill(
                checker.string(synthesis_table, "synthesis", "instructions") or DEFAULT_SYNTHESIS,
                values,
                "synthesis",
                "instructions",
            ),
            research_instructions=_maybe(
                checker.fill, checker.string(research, "research", "instructions"), values
            ),
            title=checker.string(data, None, "title") or "research",
            context=checker.context(research, "research"),
        )
    except ValueError as exc:  # what Plan itself refuses, e.g. a topic that is only spaces
        where = (None, "topic") if "topic" in str(exc) else ("research", "questions")
        raise PlanError(source, str(exc), checker.line_of(*where)) from None
    return LoadedPlan(plan, checker.model(checker.table(data, "model")), values)


def _maybe(fill: Any, value: str | None, values: Mapping[str, str]) -> str | None:
    return None if value is None else str(fill(value, values, "research", "instructions"))


def _builtin_dir() -> Any:
    return resources.files("fanwise.plans")


class _Checker:
    """Validates one plan's data, pointing every complaint at a line of its text."""

    def __init__(self, text: str, source: str, base: Path) -> None:
        self.lines = text.splitlines()
        self.source = source
        self.base = base

    def fail(
        self, message: str, table: str | None, key: str | None = None, needle: str = ""
    ) -> NoReturn:
        raise PlanError(self.source, message, self.line_of(table, key, needle))

    def line_of(self, table: str | None, key: str | None, needle: str = "") -> int | None:
        current: str | None = None
        found: int | None = None
        for number, raw in enumerate(self.lines, 1):
            line = raw.strip()
            header = re.match(r"^\[\s*([^\[\]]+?)\s*\]", line)
            if header:
                current = header[1]
                if key is None and current == table:
                    return number
                continue
            if current == table and key and re.match(rf"^{re.escape(key)}\s*=", line):
                found = number
                if not needle:
                    return number
            if found and needle and needle.splitlines()[0].strip()[:40] in raw:
                return number
        return found

    def known_keys(self, data: Mapping[str, Any]) -> None:
        for table, allowed in _SCHEMA.items():
            section = data if table is None else data.get(table, {})
            if not isinstance(section, dict):
                self.fail(f"'{table}' must be a table ([{table}])", None, table)
            for key in section:
                if key not in allowed:
                    hint = difflib.get_close_matches(key, allowed, n=1)
                    where = f"[{table}]" if table else "the top level"
                    did = (
                        f"; did you mean {hint[0]!r}?"
                        if hint
                        else f" (known: {', '.join(sorted(allowed))})"
                    )
                    self.fail(f"unknown key {key!r} in {where}{did}", table, key)

    def table(self, data: Mapping[str, Any], name: str, required: bool = False) -> dict[str, Any]:
        if name not in data:
            if required:
                self.fail(f"the plan has no [{name}] table", None)
            return {}
        return dict(data[name])

    def string(
        self, data: Mapping[str, Any], table: str | None, key: str, required: bool = False
    ) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                where = f"[{table}]" if table else "the plan"
                self.fail(f"{where} needs {key!r}, a string", table)
            return None
        if not isinstance(value, str):
            self.fail(f"{key!r} must be a string, not {type(value).__name__}", table, key)
        return str(value)

    def question(self, raw: Any) -> tuple[str, dict[str, Any]]:
        """A question's text and its own body fields: a string, or ``{ text, body }``."""
        if isinstance(raw, dict):
            unknown = sorted(set(raw) - {"text", "body", "schema", "model", "models"})
            if unknown:
                self.fail(
                    "a question table takes text, body, schema, model and models, "
                    f"not {unknown[0]!r}",
                    "research",
                    "questions",
                )
            text = raw.get("text")
            if not isinstance(text, str) or not text.strip():
                self.fail(
                    "a question table needs text, a non-empty string", "research", "questions"
                )
            return text, self.body(raw, "research")
        if not isinstance(raw, str) or not raw.strip():
            self.fail(
                "every question must be a non-empty string or { text = ..., body = {...} }",
                "research",
                "questions",
            )
        return raw, {}

    def question_models(self, raw: Any) -> tuple[str, ...]:
        """The models a question table names: ``model = "..."`` or ``models = [...]``."""
        if not isinstance(raw, dict):
            return ()
        if "model" in raw and "models" in raw:
            self.fail("a question takes model or models, not both", "research", "questions")
        names = [raw["model"]] if "model" in raw else raw.get("models", [])
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            self.fail(
                'models must be a list of model names, e.g. models = ["gpt-5", '
                '"claude-sonnet-4-5"]',
                "research",
                "questions",
            )
        if len(set(names)) != len(names):
            self.fail("models names a model twice", "research", "questions")
        return tuple(names)

    def schema(self, table: Mapping[str, Any], name: str, needle: str = "") -> Schema | None:
        """A table's ``schema``: inline, or the name of a JSON file next to the plan."""
        raw = table.get("schema")
        if raw is None:
            return None
        key = "questions" if needle else "schema"
        line = self.line_of(name, key, needle) or self.line_of(f"{name}.schema", None)
        try:
            if isinstance(raw, str):
                return load_schema_file(self.base / raw)
            if isinstance(raw, dict):
                return Schema.of(raw)
        except SchemaError as error:
            what = f"schema {raw!r}" if isinstance(raw, str) else "schema"
            raise PlanError(self.source, f"{what}: {error}", line) from None
        raise PlanError(
            self.source,
            "schema must be a JSON Schema table or the name of a JSON file, e.g. "
            '"answer.schema.json"',
            line,
        )

    def context(self, table: Mapping[str, Any], name: str) -> tuple[Material, ...]:
        """A table's ``context``: files next to the plan (by name) or ``{ text = "..." }``."""
        try:
            return plan_materials(table.get("context", []), self.base)
        except ValueError as error:
            self.fail(str(error), name, "context")

    def body(self, table: Mapping[str, Any], name: str) -> dict[str, Any]:
        """A table's ``body``: API body fields, passed to the API as written."""
        body = table.get("body", {})
        if not isinstance(body, dict):
            self.fail("body must be a table of API body fields, e.g. { seed = 7 }", name, "body")
        return dict(body)

    def variables(self, raw: Mapping[str, Any]) -> dict[str, str | None]:
        """Declared variables and their defaults (None: required)."""
        declared: dict[str, str | None] = {}
        if not isinstance(raw, dict):
            self.fail(
                "[variables] must be a table of name = default (or { help, default })",
                None,
                "variables",
            )
        for name, spec in raw.items():
            if not name.isidentifier():
                self.fail(f"variable name {name!r} is not an identifier", "variables", name)
            if isinstance(spec, str):
                declared[name] = spec
            elif isinstance(spec, dict) and set(spec) <= {"help", "default"}:
                default = spec.get("default")
                declared[name] = None if default is None else str(default)
            else:
                self.fail(
                    f"variable {name!r} must be a string (its default) "
                    "or a table { help = ..., default = ... }",
                    "variables",
                    name,
                )
        return declared

    def bind(self, declared: Mapping[str, str | None], given: Mapping[str, str]) -> dict[str, str]:
        unknown = sorted(set(given) - set(declared))
        if unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise PlanError(
                self.source,
                f"variable {unknown[0]!r}: the plan has no such variable (it has: {known})",
                unknown=unknown[0],
            )
        values = {k: v for k, v in declared.items() if v is not None} | dict(given)
        missing = [k for k in declared if not values.get(k, "").strip()]  # "" is no value
        if missing:
            raise PlanError(
                self.source,
                f"the plan needs a value for {', '.join(missing)}",
                missing=tuple(missing),
            )
        return values

    def fill(
        self,
        template: str,
        values: Mapping[str, str],
        table: str | None,
        key: str,
        needle: str = "",
    ) -> str:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            self.fail(
                f"bad template in {key!r}: {exc} (write {{{{ and }}}} for braces)",
                table,
                key,
                needle,
            )
        for name in fields:
            if name not in values:
                self.fail(
                    f"{key!r} uses {{{name}}}, which is not a declared variable "
                    f"(declare it under [variables])",
                    table,
                    key,
                    needle or template,
                )
        return template.format_map(values)

    def model(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        if "name" in raw:
            settings["model"] = self.string(raw, "model", "name")
        if "reasoning_effort" in raw:
            effort = self.string(raw, "model", "reasoning_effort")
            if effort not in REASONING_EFFORTS:
                self.fail(
                    f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}",
                    "model",
                    "reasoning_effort",
                )
            settings["reasoning_effort"] = effort
        if "max_output_tokens" in raw:
            value = raw["max_output_tokens"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                self.fail(
                    "max_output_tokens must be a positive integer", "model", "max_output_tokens"
                )
            settings["max_output_tokens"] = value
        if "temperature" in raw:
            value = raw["temperature"]
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 2:
                self.fail("temperature must be a number from 0 to 2", "model", "temperature")
            settings["temperature"] = float(value)
        if "endpoints" in raw:  # several OpenAI-compatible endpoints (docs/scaling.md)
            urls = raw["endpoints"]
            if not isinstance(urls, list) or not urls:
                self.fail("endpoints must be a non-empty list of URLs", "model", "endpoints")
            for url in urls:
                try:
                    check_endpoint(url)
                except ValueError as exc:
                    self.fail(str(exc), "model", "endpoints")
            settings["endpoints"] = list(urls)
        return settings
