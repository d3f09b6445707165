"""What the engine runs: a ``Call`` (a request with a stable key), its outcome, and the ``Store``.

A leaf module, so that the engine, its dispatches and the journal all import it and none of
them imports another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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

    def __post_init__(self) -> None:
        if (
            self.schema is not None
            and schema_of_body(self.request.endpoint, self.request.body) is None
        ):
            body = with_schema(self.request.endpoint.value, self.request.body, self.schema)
            object.__setattr__(self, "request", Request(self.request.endpoint, body))
        if not self.key:
            object.__setattr__(self, "key", request_key(self.request))
        if not self.label:
            object.__setattr__(self, "label", self.request.prompt)


def request_key(request: Request) -> str:
    """A stable digest of everything that shapes the answer: same key, same question."""
    canonical = json.dumps(request.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


class Store(Protocol):
    """Where outcomes are kept the moment they exist, and found again (resume, cache)."""

    def lookup(self, call: Call) -> Fulfilled[Completion] | None: ...

    def record(self, index: int, call: Call, outcome: CallOutcome) -> None: ...


__all__ = ["Call", "CallOutcome", "Store", "request_key"]
