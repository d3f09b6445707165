"""A staged workflow as values: ``Stage`` (one step) and ``Workflow`` (the steps, in order).

Each stage is one of five kinds, told apart by the field that is set: ``prompt`` alone (one
call, a chain step), ``questions`` (a fixed fan-out), ``map`` (one call per item of an earlier
stage's list), ``route`` (pick which later stages run) and ``vote`` or ``models`` (ask several
times, then pick). Everything is checked when the workflow is made, before any call is paid for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from fanwise.context import Material, block
from fanwise.outcome import FanwiseError
from fanwise.schemas import Schema, schema_from_dict, schema_to_dict
from fanwise.stages.template import placeholders

if TYPE_CHECKING:
    from pydantic import BaseModel

SchemaSource: TypeAlias = "type[BaseModel] | Mapping[str, Any] | Schema"
Kind = Literal["prompt", "questions", "map", "route", "vote"]
POLICIES = ("settled", "all")
MAP_NAMES = ("item", "index")


class StageError(FanwiseError, ValueError):
    """A workflow that cannot run; ``stage`` names the stage at fault (None: the whole)."""

    def __init__(self, message: str, stage: str | None = None) -> None:
        super().__init__(f"stage {stage!r}: {message}" if stage else message)
        self.stage = stage
        self.key: str | None = None  # the plan key at fault, for a file:line


def _fail(stage: str, key: str, message: str) -> StageError:
    error = StageError(message, stage)
    error.key = key
    return error


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a workflow. ``{name}`` in a prompt is an earlier stage's result.

    ``policy`` says when a stage of several calls has failed: ``settled`` (fewer than one
    answer, or than ``quorum``), ``all`` (any call failed; the others are cancelled).
    ``required`` stops the run when this stage fails; otherwise only the stages that use its
    result are skipped. ``model``, ``instructions`` and ``body`` apply to this stage's calls.
    """

    name: str
    prompt: str | None = None
    questions: Sequence[str] = ()
    map: str | None = None
    route: str | None = None
    branches: Mapping[str, Sequence[str]] = field(default_factory=dict)
    vote: int | None = None
    models: Sequence[str] = ()
    pick: str | None = None
    judge: str | None = None
    max_items: int | None = None
    schema: SchemaSource | None = None
    model: str | None = None
    instructions: str | None = None
    body: Mapping[str, Any] = field(default_factory=dict)
    policy: str = "settled"
    quorum: int | None = None
    required: bool = False
    cite: bool = False
    context: Sequence[Material] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "questions", tuple(self.questions))
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "context", tuple(map(Material.of, self.context)))
        branches = {str(k): tuple(v) for k, v in dict(self.branches).items()}
        object.__setattr__(self, "branches", branches)
        if self.schema is not None and not isinstance(self.schema, Schema):
            object.__setattr__(self, "schema", Schema.of(self.schema))
        if self.vote is not None or self.models:
            object.__setattr__(self, "vote", self.vote or len(self.models))
            if self.pick is None and self.judge is None:
                object.__setattr__(self, "pick", "majority")
        self._check()

    @property
    def kind(self) -> Kind:
        if self.route is not None:
            return "route"
        if self.map is not None:
            return "map"
        if self.questions:
            return "questions"
        if self.vote is not None:
            return "vote"
        return "prompt"

    @property
    def output_schema(self) -> Schema | None:
        return self.schema if isinstance(self.schema, Schema) else None

    def texts(self) -> tuple[str, ...]:
        """Every template of this stage (its placeholders must name earlier stages)."""
        return tuple(t for t in (self.prompt, self.judge, *self.questions) if t)

    def _check(self) -> None:
        name = self.name
        if not name.isidentifier() or name in MAP_NAMES:
            raise _fail(name, "name", "a stage name must be an identifier, not item or index")
        chosen = [k for k in ("questions", "map", "route") if getattr(self, k)]
        if len(chosen) > 1:
            raise _fail(name, chosen[1], f"give one of questions, map, route, not {chosen}")
        if self.vote is not None and chosen:
            raise _fail(name, "vote", f"vote goes with a prompt, not with {chosen[0]}")
        if self.kind == "route":
            if self.prompt or not self.branches:
                raise _fail(name, "route", "a route needs branches and no prompt")
        elif self.kind != "questions" and not self.prompt:
            raise _fail(name, "prompt", f"a {self.kind} stage needs a prompt")
        if self.kind == "questions" and self.prompt:
            raise _fail(name, "prompt", "give questions or a prompt, not both")
        if self.vote is not None:
            if self.vote < 2:
                raise _fail(name, "vote", f"vote must be 2 or more, got {self.vote}")
            if self.models and self.vote != len(self.models):
                raise _fail(name, "vote", f"vote = {self.vote} but {len(self.models)} models")
            if self.pick is not None and self.judge is not None:
                raise _fail(name, "judge", "give pick or judge, not both")
            if self.pick is not None and self.pick.partition(":")[0] != "majority":
                raise _fail(name, "pick", 'pick must be "majority" or "majority:FIELD"')
        elif self.models or self.pick or self.judge:
            raise _fail(name, "pick", "pick, judge and models go with vote")
        if self.policy not in POLICIES:
            raise _fail(name, "policy", f"policy must be one of {', '.join(POLICIES)}")
        if self.quorum is not None and self.quorum < 1:
            raise _fail(name, "quorum", f"quorum must be 1 or more, got {self.quorum}")
        if self.max_items is not None and (self.kind != "map" or self.max_items < 1):
            raise _fail(name, "max_items", "max_items is a positive number, on a map stage")

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["schema"] = schema_to_dict(self.output_schema)
        data["questions"], data["models"] = list(self.questions), list(self.models)
        data["branches"] = {k: list(v) for k, v in self.branches.items()}
        data["body"] = dict(self.body)
        data["context"] = [m.to_dict() for m in self.context]
        return data

    @property
    def context_block(self) -> str | None:
        """The stage's shared context as the block each of its calls carries, if any."""
        return block(self.context) if self.context else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stage:
        values = dict(data)
        values["schema"] = schema_from_dict(values.get("schema"))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Workflow:
    """Stages run in order; each may use the results of those before it."""

    stages: tuple[Stage, ...]
    title: str = "workflow"
    topic: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise StageError("a workflow needs at least one stage")
        seen: set[str] = set()
        for stage in self.stages:
            if stage.name in seen:
                raise _fail(stage.name, "name", "two stages have this name")
            _check_references(stage, seen)
            for names in stage.branches.values():
                for target in names:
                    if target in seen or target == stage.name:
                        raise _fail(stage.name, "branches", f"{target!r} must come after it")
                    if target not in {s.name for s in self.stages}:
                        raise _fail(stage.name, "branches", f"there is no stage {target!r}")
            seen.add(stage.name)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def models(self) -> tuple[str, ...]:
        """Every model a stage names (its ``model``, a vote's ``models``): the providers a run
        of this workflow needs besides its own."""
        named = (m for s in self.stages for m in (s.model, *s.models) if m)
        return tuple(dict.fromkeys(named))

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "topic": self.topic,
            "stages": [s.to_dict() for s in self.stages],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workflow:
        stages = tuple(Stage.from_dict(s) for s in data["stages"])
        return cls(stages, str(data.get("title", "workflow")), str(data.get("topic", "")))


def _check_references(stage: Stage, earlier: set[str]) -> None:
    """Every placeholder and source names an earlier stage (or item/index in a map)."""
    allowed = earlier | (set(MAP_NAMES) if stage.kind == "map" else set())
    for text in stage.texts():
        for path in placeholders(text):
            root = path.split(".")[0]
            if root not in allowed:
                known = ", ".join(sorted(allowed)) or "none"
                raise _fail(
                    stage.name,
                    "prompt",
                    f"{{{path}}} is not an earlier stage's result (it may use: {known})",
                )
    for key in ("map", "route"):
        source = getattr(stage, key)
        if source is not None and source.split(".")[0] not in earlier:
            raise _fail(stage.name, key, f"{key} = {source!r} does not name an earlier stage")


__all__ = ["Kind", "SchemaSource", "Stage", "StageError", "Workflow"]
