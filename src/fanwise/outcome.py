"""Outcomes of a call, and the error taxonomy every failure is classified into.

An outcome is plain, immutable, JSON-serialisable data: ``Fulfilled`` or ``Rejected``, the Python
counterparts of ``PromiseSettledResult``. Both carry how long the call took and every attempt it
made, so retries stay visible after the fact.

The errors form one tree; each kind says whether trying again can help::

    FanwiseError                 operational errors of fanwise itself
    └── CallError                a call that failed; ``kind`` and ``retryable`` classify it
        ├── RateLimited          rate_limited      retryable (429; may carry Retry-After)
        ├── CallTimeout          timeout           retryable (408; also a builtin TimeoutError)
        ├── ServerError          server            retryable (5xx, 409)
        ├── NetworkError         network           retryable (refused, reset, dropped)
        ├── InvalidResponse      invalid_response  retryable (a 2xx that is not what was promised)
        ├── BadRequest           bad_request       final (400, 404, 422, context length)
        ├── AuthError            auth              final (401, 403)
        ├── Refused              refused           final (the model declined to answer)
        ├── Truncated            truncated         final (a structured answer cut at its cap)
        └── Cancelled            cancelled         final (fail-fast abort, Ctrl-C)

An exception that is none of these (a bug in user code handed to ``settle``) keeps its own type
and is classified ``exception``: never retried.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeAlias, TypeVar

T = TypeVar("T")


class ErrorKind(enum.StrEnum):
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    SERVER = "server"
    NETWORK = "network"
    INVALID_RESPONSE = "invalid_response"
    BAD_REQUEST = "bad_request"
    AUTH = "auth"
    REFUSED = "refused"
    TRUNCATED = "truncated"
    CANCELLED = "cancelled"
    EXCEPTION = "exception"


RETRYABLE_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.TIMEOUT,
        ErrorKind.SERVER,
        ErrorKind.NETWORK,
        ErrorKind.INVALID_RESPONSE,
    }
)


class FanwiseError(Exception):
    """Base of every operational error fanwise raises."""


class CallError(FanwiseError):
    """A call that failed, classified. ``retry_after`` is the server's own wait, in seconds.

    ``headers`` keeps the error response's headers (``x-ratelimit-*``) for the limiter to read;
    they are not serialised. ``body`` is the server's error body as it came, when there was one
    (a batch output line gives it whole).
    """

    kind: ClassVar[ErrorKind] = ErrorKind.EXCEPTION

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        usage: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after
        self.code = code
        self.headers: Mapping[str, str] = dict(headers or {})
        self.body = body
        # Tokens the failed attempt still cost (an answer that broke its schema, a refusal):
        # kept so usage and cost count every attempt, not only the last.
        self.usage: Mapping[str, int] | None = dict(usage) if usage else None

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def __repr__(self) -> str:
        extra = f", status_code={self.status_code}" if self.status_code is not None else ""
        return f"{type(self).__name__}({self.message!r}{extra})"


class RateLimited(CallError):
    kind = ErrorKind.RATE_LIMITED


class CallTimeout(CallError, TimeoutError):
    kind = ErrorKind.TIMEOUT


class ServerError(CallError):
    kind = ErrorKind.SERVER


class NetworkError(CallError):
    kind = ErrorKind.NETWORK


class InvalidResponse(CallError):
    kind = ErrorKind.INVALID_RESPONSE


class BadRequest(CallError):
    kind = ErrorKind.BAD_REQUEST


class AuthError(CallError):
    kind = ErrorKind.AUTH


class Cancelled(CallError):
    kind = ErrorKind.CANCELLED


class Refused(CallError):
    """The model declined (a ``refusal`` in the answer): asking again the same way won't help."""

    kind = ErrorKind.REFUSED


class Truncated(CallError):
    """An answer cut at its output-token cap before it was usable (JSON its schema wanted):
    asking again at the same cap is cut at the same place, so it is never retried."""

    kind = ErrorKind.TRUNCATED


ERROR_CLASSES: Mapping[ErrorKind, type[CallError]] = {
    cls.kind: cls
    for cls in (
        RateLimited,
        CallTimeout,
        ServerError,
        NetworkError,
        InvalidResponse,
        BadRequest,
        AuthError,
        Cancelled,
        Refused,
        Truncated,
    )
}


def classify(error: BaseException) -> ErrorKind:
    """The kind of any exception: ours carry it; a bare TimeoutError is a timeout."""
    if isinstance(error, CallError):
        return error.kind
    if isinstance(error, TimeoutError):
        return ErrorKind.TIMEOUT
    return ErrorKind.EXCEPTION


def is_retryable(error: BaseException) -> bool:
    return classify(error) in RETRYABLE_KINDS


def error_to_dict(error: BaseException) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": classify(error).value,
        "type": type(error).__name__,
        "message": str(error) or type(error).__name__,
        "retryable": is_retryable(error),
    }
    if isinstance(error, CallError):
        if error.status_code is not None:
            data["status_code"] = error.status_code
        if error.retry_after is not None:
            data["retry_after"] = error.retry_after
        if error.code is not None:
            data["code"] = error.code
        if error.body is not None:
            data["body"] = error.body.decode(errors="replace")
        if error.usage:
            data["usage"] = dict(error.usage)
    return data


def error_from_dict(data: Mapping[str, Any]) -> CallError:
    """Rebuild a classified error from its JSON form (the original traceback is gone)."""
    kind = ErrorKind(data["kind"])
    cls = ERROR_CLASSES.get(kind, CallError)
    return cls(
        str(data.get("message", "")),
        status_code=data.get("status_code"),
        retry_after=data.get("retry_after"),
        code=data.get("code"),
        body=data["body"].encode() if isinstance(data.get("body"), str) else None,
        usage=data.get("usage"),
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a call. Times are seconds on the run's clock; ``waited`` preceded the try.

    ``queued`` is the part of ``duration`` spent waiting for the limiter (rate-limit pacing)
    before the request was sent. ``via`` is the path an ``--engine auto`` run sent it by
    (``"batch"`` or ``"live"``); None elsewhere, where the engine says it.
    """

    number: int
    started: float
    duration: float
    error: dict[str, Any] | None = None
    waited: float = 0.0
    queued: float = 0.0
    via: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def service(self) -> float:
        """Seconds the request was out with the server: the duration less the limiter's hold."""
        return max(0.0, self.duration - self.queued)

    def to_dict(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict's deep copy cost ~10 µs per call in the journal's
        # hot path (docs/benchmarks.md). ``error`` holds scalars only, so a shallow copy is one.
        data: dict[str, Any] = {
            "number": self.number,
            "started": self.started,
            "duration": self.duration,
            "error": None if self.error is None else dict(self.error),
            "waited": self.waited,
            "queued": self.queued,
        }
        if self.via is not None:  # only an auto run's attempts say it: the others are unchanged
            data["via"] = self.via
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attempt:
        return cls(
            number=int(data["number"]),
            started=float(data["started"]),
            duration=float(data["duration"]),
            error=data.get("error"),
            waited=float(data.get("waited", 0.0)),
            queued=float(data.get("queued", 0.0)),
            via=data.get("via"),
        )


class _Timed:
    """What a call's attempts add up to; ``Fulfilled`` and ``Rejected`` both read it."""

    __slots__ = ()
    attempts: tuple[Attempt, ...]

    @property
    def service_time(self) -> float:
        """Seconds its requests were out with the server, every attempt's (``Attempt.service``):
        what the call cost the server, without fanwise's own waits."""
        return sum(a.service for a in self.attempts)

    @property
    def queue_time(self) -> float:
        """Seconds its attempts were held by fanwise's own limiter before going out."""
        return sum(a.queued for a in self.attempts)


@dataclass(frozen=True, slots=True)
class Fulfilled(_Timed, Generic[T]):
    """A call that produced a value."""

    value: T
    latency: float = 0.0
    started: float = 0.0
    attempts: tuple[Attempt, ...] = ()
    cached: bool = False
    status: ClassVar[Literal["fulfilled"]] = "fulfilled"

    @property
    def ok(self) -> Literal[True]:
        return True

    def to_dict(self, value_to_json: Callable[[T], Any] | None = None) -> dict[str, Any]:
        value = value_to_json(self.value) if value_to_json else _jsonable(self.value)
        return {
            "status": self.status,
            "value": value,
            "latency": self.latency,
            "started": self.started,
            "attempts": [a.to_dict() for a in self.attempts],
            "cached": self.cached,
        }


@dataclass(frozen=True, slots=True)
class Rejected(_Timed):
    """A call that failed; ``error`` is the classified exception, ``kind`` its class in the tree."""

    error: Exception
    latency: float = 0.0
    started: float = 0.0
    attempts: tuple[Attempt, ...] = ()
    status: ClassVar[Literal["rejected"]] = "rejected"

    @property
    def ok(self) -> Literal[False]:
        return False

    @property
    def kind(self) -> ErrorKind:
        return classify(self.error)

    @property
    def message(self) -> str:
        return str(self.error) or type(self.error).__name__

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": error_to_dict(self.error),
            "latency": self.latency,
            "started": self.started,
            "attempts": [a.to_dict() for a in self.attempts],
        }


Outcome: TypeAlias = Fulfilled[T] | Rejected


def outcome_from_dict(
    data: Mapping[str, Any], value_from_json: Callable[[Any], T]
) -> Fulfilled[T] | Rejected:
    attempts = tuple(Attempt.from_dict(a) for a in data.get("attempts", ()))
    if data["status"] == "fulfilled":
        return Fulfilled(
            value=value_from_json(data["value"]),
            latency=float(data.get("latency", 0.0)),
            started=float(data.get("started", 0.0)),
            attempts=attempts,
            cached=bool(data.get("cached", False)),
        )
    if data["status"] == "rejected":
        return Rejected(
            error=error_from_dict(data["error"]),
            latency=float(data.get("latency", 0.0)),
            started=float(data.get("started", 0.0)),
            attempts=attempts,
        )
    raise ValueError(f"unknown outcome status {data['status']!r}")


def _jsonable(value: object) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


__all__ = [
    "RETRYABLE_KINDS",
    "Attempt",
    "AuthError",
    "BadRequest",
    "CallError",
    "CallTimeout",
    "Cancelled",
    "ErrorKind",
    "FanwiseError",
    "Fulfilled",
    "InvalidResponse",
    "NetworkError",
    "Outcome",
    "RateLimited",
    "Refused",
    "Rejected",
    "ServerError",
    "Truncated",
    "classify",
    "error_from_dict",
    "error_to_dict",
    "is_retryable",
    "outcome_from_dict",
]
