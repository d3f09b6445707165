"""The one interface every model speaks: a request in, a completion (or a classified error) out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

DEFAULT_MODEL = "gpt-5"
"""The model asked when none is named: by ``Request``, ``ModelSettings``, the CLI and the API."""

DeltaSink = Callable[[str], None]
"""Receives text as a streaming model produces it."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the API reports them; reasoning tokens are part of output tokens."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cached_tokens + other.cached_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        # Field by field, not dataclasses.asdict (which deep-copies): see Request.to_dict.
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Usage:
        if not data:
            return cls()
        return cls(
            input_tokens=int(data.get("input_tokens", 0)),
            output_tokens=int(data.get("output_tokens", 0)),
            reasoning_tokens=int(data.get("reasoning_tokens", 0)),
            cached_tokens=int(data.get("cached_tokens", 0)),
        )


@dataclass(frozen=True, slots=True)
class Request:
    """What to ask. ``instructions`` is the system/developer message; ``None`` fields are unset."""

    prompt: str
    model: str = DEFAULT_MODEL
    instructions: str | None = None
    reasoning_effort: str | None = "minimal"
    max_output_tokens: int | None = None
    temperature: float | None = None

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its recursive deep copy was 30 % of the engine's own time per
        # call (request_key runs this for every Call; docs/benchmarks.md). Every field is a scalar.
        fields = self.__dataclass_fields__
        return {name: value for name in fields if (value := getattr(self, name)) is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Request:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer. ``headers`` keeps the response headers that limits and logs read."""

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    response_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "usage": self.usage.to_dict(),
            "model": self.model,
            "response_id": self.response_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Completion:
        return cls(
            text=str(data["text"]),
            usage=Usage.from_dict(data.get("usage")),
            model=str(data.get("model", "")),
            response_id=data.get("response_id"),
        )


@runtime_checkable
class Model(Protocol):
    """A model fanwise can call. Failures are raised as ``fanwise.outcome.CallError`` subclasses.

    ``on_delta``, when given, receives the text as it streams; the returned completion still
    holds the whole text. ``aclose()`` releases connections; ``async with model:`` calls it. A
    class that subclasses ``Model`` inherits both (``aclose`` does nothing by default).
    """

    @property
    def name(self) -> str: ...

    async def complete(
        self, request: Request, *, on_delta: DeltaSink | None = None
    ) -> Completion: ...

    async def aclose(self) -> None:
        """Release what the model holds (connections); it may be used again after."""
        return  # a body, so that subclasses inherit this rather than have to write it

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
