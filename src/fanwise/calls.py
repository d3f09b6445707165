"""What the engine runs: a ``Call`` (a request with a stable key), its outcome, and the ``Store``.

A leaf module, so that the engine, its dispatches and the journal all import it and none of
them imports another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Protocol

from fanwise.models.base import Completion, Request
from fanwise.outcome import Fulfilled, Rejected
from fanwise.schemas import Schema, schema_of_body, with_schema

CallOutcome = Fulfilled[Completion] | Rejected


@dataclass(frozen=True, slots=True)
class Call:
    """One request to make. ``key`` identifies it across runs (the journal's cache and resume).

    With a ``schema``, the request asks for it in the API's strict form (added to the body if
    the body does not ask for a format already), and each answer is validated against it.
    """

    request: Request
    label: str = ""
    key: str = ""
    schema: Schema | None = None
    canonical_body: str = field(init=False, repr=False, compare=False)
    """The body as canonical JSON (sorted keys), made once: the key's digest and the journal's
    row both read it, which saved one encoding of every body per call."""

    def __post_init__(self) -> None:
        if (
            self.schema is not None
            and schema_of_body(self.request.endpoint, self.request.body) is None
        ):
            body = with_schema(self.request.endpoint.value, self.request.body, self.schema)
            object.__setattr__(self, "request", Request(self.request.endpoint, body))
        canonical = canonical_json(self.request.body)
        object.__setattr__(self, "canonical_body", canonical)
        if not self.key:
            object.__setattr__(self, "key", _digest(self.request.endpoint.value, canonical))
        if not self.label:
            object.__setattr__(self, "label", self.request.prompt)


canonical_json = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
"""JSON with sorted keys, as written: one encoder made once (``json.dumps`` with options builds
a new one on every call)."""


def request_key(request: Request) -> str:
    """A stable digest of everything that shapes the answer: same key, same question."""
    return _digest(request.endpoint.value, canonical_json(request.body))


def _digest(endpoint: str, canonical_body: str) -> str:
    """sha256 of ``{"body": ..., "endpoint": ...}`` in canonical JSON, built from the body's
    canonical text: the same digest every journal so far holds, without encoding twice."""
    canonical = f'{{"body": {canonical_body}, "endpoint": {canonical_json(endpoint)}}}'
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class SettledRecord:
    """One call, settled: built once by the engine, the moment its outcome exists, and read by
    everything that reads a settled call (the journal's store, the budget, a batch's output
    line, the live view, telemetry), so its cost is computed once.

    ``cost`` is in dollars, None when unknown (no price for the model, or no usage reported).
    """

    index: int
    call: Call
    outcome: CallOutcome
    cost: float | None = None

    @property
    def model(self) -> str:
        """The model that answered (as the answer names it), else the one asked for."""
        outcome = self.outcome
        named = outcome.value.model if isinstance(outcome, Fulfilled) else ""
        return named or self.call.request.model

    @property
    def endpoint(self) -> str:
        """The API the call was sent to (``responses``, ``messages``...)."""
        return self.call.request.endpoint.value

    @property
    def cached(self) -> bool:
        """Answered from the journal: no request, no cost."""
        return isinstance(self.outcome, Fulfilled) and self.outcome.cached


class Store(Protocol):
    """Where outcomes are kept the moment they exist, and found again (resume, cache)."""

    def lookup(self, call: Call) -> Fulfilled[Completion] | None: ...

    def record(self, settled: SettledRecord) -> None: ...


BRIEF_CHARS = 80
"""How much of a failed question a synthesis prompt repeats: a question too long for the
model's context (a 400) would otherwise overflow the synthesis too."""


def brief(label: str, width: int = BRIEF_CHARS) -> str:
    """``label`` on one line, cut to ``width`` characters with "…" when longer."""
    flat = " ".join(label.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


__all__ = [
    "BRIEF_CHARS",
    "Call",
    "CallOutcome",
    "SettledRecord",
    "Store",
    "brief",
    "canonical_json",
    "request_key",
]
