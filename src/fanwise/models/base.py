"""The one interface every model speaks: a request in, a completion (or a classified error) out.

A ``Request`` is an API endpoint and the JSON body the user wrote, carried unchanged; a
``Completion`` keeps the server's whole response body as bytes, plus what fanwise reads from it
(``models.bodies``). Neither names a provider: an endpoint is a value of ``Endpoint``, and a new
API (Anthropic's messages, say) joins as one more member and one more body reader.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

from fanwise.models import requests as _read

DEFAULT_MODEL = "gpt-5"
"""The model asked when none is named: by ``Request``, ``ModelSettings``, the CLI and the API."""

DeltaSink = Callable[[str], None]
"""Receives text as a streaming model produces it."""

TRUNCATED_REASONS = frozenset({"length", "max_output_tokens", "max_tokens"})
"""The finish reasons that say the answer was cut at its output-token cap: Chat and Completions'
``length``, a Responses object's ``incomplete_details.reason``, Anthropic's ``max_tokens``."""


class Endpoint(enum.StrEnum):
    """An API a request is sent to; its value is how fanwise names it in journals and keys."""

    RESPONSES = "responses"
    CHAT = "chat.completions"
    EMBEDDINGS = "embeddings"
    COMPLETIONS = "completions"
    MESSAGES = "messages"  # Anthropic's Messages API (models/anthropic.py)
    GENERATE = "generateContent"  # Gemini's own API (models/gemini_native.py); streamed, it
    # goes to streamGenerateContent?alt=sse, and --engine batch sends it to Batch Mode
    EMBED_CONTENT = "embedContent"  # Gemini's embeddings

    @property
    def path(self) -> str:
        """Its path under a base URL such as ``https://api.openai.com/v1``."""
        return "/" + self.value.replace(".", "/")

    @property
    def native(self) -> bool:
        """Gemini's own API: the model is in the URL (``models/{model}:generateContent``)."""
        return self in (Endpoint.GENERATE, Endpoint.EMBED_CONTENT)

    @property
    def url(self) -> str:
        """Its ``url`` in an OpenAI batch file: ``/v1/chat/completions`` (Gemini's own API:
        ``/v1beta/models/{model}:generateContent``, the model in place of ``{model}``)."""
        return f"/v1beta/models/{{model}}:{self.value}" if self.native else "/v1" + self.path

    def url_for(self, model: str) -> str:
        """The batch-line ``url`` of a request to this endpoint for ``model``."""
        return self.url.replace("{model}", model.removeprefix("models/"))

    @classmethod
    def from_url(cls, url: object) -> Endpoint | None:
        """The endpoint a batch line's ``url`` names, or None."""
        if not isinstance(url, str):
            return None
        native = _NATIVE_URL.fullmatch(url)
        if native is not None:
            return _BY_NAME.get(native.group("method"))
        return _BY_URL.get(url)

    @staticmethod
    def model_in_url(url: str) -> str | None:
        """The model a Gemini batch-line ``url`` names (``/v1beta/models/M:generateContent``)."""
        native = _NATIVE_URL.fullmatch(url)
        return native.group("model") if native is not None else None

    @classmethod
    def parse(cls, name: str) -> Endpoint:
        """By value (``chat.completions``) or the short names the CLI takes (``chat``)."""
        found = _BY_NAME.get(name)
        if found is None:
            raise ValueError(
                f"unknown endpoint {name!r}: use one of {', '.join(e.value for e in cls)}"
            )
        return found


_BY_URL = {e.url: e for e in Endpoint if not e.native}
_NATIVE_URL = re.compile(
    r"/(?:v1beta|v1)/models/(?P<model>[A-Za-z0-9._-]+):(?P<method>generateContent|embedContent)"
)
_BY_NAME = {**{e.value: e for e in Endpoint}, "chat": Endpoint.CHAT}


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the API reports them; reasoning tokens are part of output tokens.

    ``cached_tokens`` (cache reads) and ``cache_write_tokens`` (Anthropic's cache writes, priced
    apart) are both part of ``input_tokens``; OpenAI and Gemini report no cache writes.
    ``unknown`` counts the answers whose usage the server did not report (a stream from a server
    that ignores ``stream_options``): their tokens are not in the counts, which are then a floor,
    not a zero.
    Of the cache writes, ``cache_write_1h_tokens`` went to the 1-hour cache, which costs more
    than the 5-minute one.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    unknown: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cached_tokens + other.cached_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.unknown + other.unknown,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        # Field by field, not dataclasses.asdict (which deep-copies: 30 % of the engine's time).
        data = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cache_write_tokens:  # only Anthropic reports them: other runs' JSON stays as was
            data["cache_write_tokens"] = self.cache_write_tokens
        if self.unknown:  # only when a server left usage out: "usage unknown", not 0 tokens
            data["unknown"] = self.unknown
        if self.cache_write_1h_tokens:
            data["cache_write_1h_tokens"] = self.cache_write_1h_tokens
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Usage:
        if not data:
            return cls()
        return cls(
            input_tokens=int(data.get("input_tokens", 0)),
            output_tokens=int(data.get("output_tokens", 0)),
            reasoning_tokens=int(data.get("reasoning_tokens", 0)),
            cached_tokens=int(data.get("cached_tokens", 0)),
            cache_write_tokens=int(data.get("cache_write_tokens", 0)),
            unknown=int(data.get("unknown", 0)),
            cache_write_1h_tokens=int(data.get("cache_write_1h_tokens", 0)),
        )


@dataclass(frozen=True, slots=True)
class ExplicitCache:
    """A context cache a provider holds on request (Gemini's ``cachedContents``): its name,
    the model it is for, and the tokens it holds."""

    name: str
    model: str
    tokens: int


@runtime_checkable
class CachesContext(Protocol):
    """A model that can hold a context in an explicit cache for the calls that share it."""

    async def cache_context(
        self, model: str, system: str | None, context: str, ttl: float
    ) -> ExplicitCache: ...

    async def drop_cache(self, cache: ExplicitCache) -> None: ...


@dataclass(frozen=True, slots=True, eq=True)
class Request:
    """What to ask: an endpoint and the API body, exactly as the user wrote it.

    fanwise never rewrites a field of ``body``; ``with_defaults`` only adds what is missing.
    The properties read the body (for labels, the limiter's estimate and the offline model).
    """

    endpoint: Endpoint
    body: Mapping[str, Any]

    __hash__ = None  # type: ignore[assignment]  # the body is a mutable mapping

    @classmethod
    def text(
        cls,
        prompt: str,
        model: str = DEFAULT_MODEL,
        *,
        instructions: str | None = None,
        reasoning_effort: str | None = "minimal",
        max_output_tokens: int | None = None,
        temperature: float | None = None,
        endpoint: Endpoint = Endpoint.RESPONSES,
        extra: Mapping[str, Any] | None = None,
        context: str | None = None,
        cache_ttl: str | None = None,
        chat_cap: str = "max_completion_tokens",
    ) -> Request:
        """A prompt-style request, as the endpoint's own body; ``extra`` fields are added.
        ``context`` is shared material placed before the prompt for the provider's cache;
        ``chat_cap`` names the field(s) of a Chat body's output cap (``requests.CHAT_CAPS``)."""
        body = _read.text_body(
            endpoint.value,
            prompt,
            model=model,
            instructions=instructions,
            reasoning_effort=reasoning_effort,
            max_output_tokens=max_output_tokens,
            temperature=temperature,
            context=context,
            cache_ttl=cache_ttl,
            chat_cap=chat_cap,
        )
        if extra:
            body.update(extra)
        return cls(endpoint, body)

    def with_defaults(self, **fields: Any) -> Request:
        """The same request with each of ``fields`` the body lacks added; none overwritten."""
        missing = {k: v for k, v in fields.items() if k not in self.body and v is not None}
        return Request(self.endpoint, {**self.body, **missing}) if missing else self

    @property
    def model(self) -> str:
        value = self.body.get("model")
        return value if isinstance(value, str) else ""

    @property
    def prompt(self) -> str:
        """The user's text in the body (all of it, turn after turn)."""
        return _read.prompt(self.endpoint.value, self.body)

    @property
    def instructions(self) -> str | None:
        """The system, developer or ``instructions`` text, if any."""
        return _read.instructions(self.endpoint.value, self.body)

    @property
    def max_output_tokens(self) -> int | None:
        return _read.max_output_tokens(self.body)

    @property
    def reasoning_effort(self) -> str | None:
        return _read.reasoning_effort(self.body)

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its recursive deep copy was 30 % of the engine's own time per
        # call (request_key runs this for every Call; docs/benchmarks.md).
        return {"endpoint": self.endpoint.value, "body": self.body}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Request:
        """From ``to_dict``; also reads the prompt-style requests older journals hold."""
        if "body" in data:
            return cls(Endpoint(data.get("endpoint", "responses")), dict(data["body"]))
        keys = ("model", "instructions", "reasoning_effort", "max_output_tokens", "temperature")
        return cls.text(str(data.get("prompt", "")), **{k: data[k] for k in keys if k in data})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model asked for: ``arguments`` is the JSON text, as the API sends it."""

    id: str
    name: str
    arguments: str
    type: str = "function"

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments, "type": self.type}


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer: the server's whole body (``raw``), and what fanwise reads from it.

    ``raw`` is kept as the bytes that came over the wire and parsed only when ``body`` or
    ``embeddings`` is read, so the hot path pays nothing for keeping it. ``headers`` keeps the
    response headers that limits and logs read.
    """

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    response_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bytes = field(default=b"", repr=False)
    endpoint: Endpoint = Endpoint.RESPONSES
    finish_reason: str | None = None
    refusal: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    request_id: str | None = None
    parsed: Any = field(default=None, compare=False, repr=False)
    """The answer validated against its call's schema: a pydantic instance, or JSON data."""

    @property
    def body(self) -> Any:
        """The server's whole response body, parsed (``{}`` when none was kept)."""
        return json.loads(self.raw) if self.raw else {}

    @property
    def truncated(self) -> bool:
        """Whether the answer was cut at its output-token cap (``TRUNCATED_REASONS``): its text
        is what the model wrote before the cap, not the whole answer it meant."""
        return self.finish_reason in TRUNCATED_REASONS

    @property
    def embeddings(self) -> list[list[float]]:
        """Each input's embedding vector, in input order (an embeddings response only)."""
        if self.endpoint is Endpoint.EMBED_CONTENT:  # Gemini's: {"embedding": {"values"}}
            embedding = self.body.get("embedding")
            values = embedding.get("values") if isinstance(embedding, dict) else None
            return [values] if isinstance(values, list) else []
        data = self.body.get("data") if self.endpoint is Endpoint.EMBEDDINGS else None
        if not isinstance(data, list):
            return []
        items = sorted((d for d in data if isinstance(d, dict)), key=lambda d: d.get("index", 0))
        return [item["embedding"] for item in items if isinstance(item.get("embedding"), list)]

    def to_dict(self) -> dict[str, Any]:
        """What fanwise read; the raw body travels apart from it (the journal compresses it)."""
        data: dict[str, Any] = {
            "text": self.text,
            "usage": self.usage.to_dict(),
            "model": self.model,
            "response_id": self.response_id,
            "endpoint": self.endpoint.value,
        }
        if self.finish_reason is not None:
            data["finish_reason"] = self.finish_reason
        if self.truncated:
            data["truncated"] = True
        if self.refusal is not None:
            data["refusal"] = self.refusal
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.request_id is not None:
            data["request_id"] = self.request_id
        if self.parsed is not None:
            dump = getattr(self.parsed, "model_dump", None)
            data["parsed"] = dump(mode="json") if callable(dump) else self.parsed
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], raw: bytes = b"") -> Completion:
        return cls(
            text=str(data["text"]),
            usage=Usage.from_dict(data.get("usage")),
            model=str(data.get("model", "")),
            response_id=data.get("response_id"),
            raw=raw,
            endpoint=Endpoint(data.get("endpoint", "responses")),
            finish_reason=data.get("finish_reason"),
            refusal=data.get("refusal"),
            tool_calls=tuple(ToolCall(**call) for call in data.get("tool_calls", ())),
            request_id=data.get("request_id"),
            parsed=data.get("parsed"),
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
