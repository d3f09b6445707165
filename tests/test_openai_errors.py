"""Every error of the layer below (the openai SDK, httpx2) maps onto one kind of ours."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx2
import openai
import openai._exceptions
import pytest

from fanwise import ErrorKind
from fanwise.models.compat import retry_after
from fanwise.models.openai import classify_error

REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/responses")


def status_error(
    cls: type[openai.APIStatusError], status: int, code: str | None = None, **headers: str
) -> openai.APIStatusError:
    response = httpx2.Response(status, request=REQUEST, headers=headers)
    return cls(f"HTTP {status}", response=response, body={"code": code, "message": "m"})


def bare(cls: type[Exception], message: str = "failed") -> Exception:
    """An instance without running a constructor that needs SDK objects we do not have."""
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    return error


EXPECTED: dict[type[BaseException], ErrorKind] = {
    openai.BadRequestError: ErrorKind.BAD_REQUEST,
    openai.AuthenticationError: ErrorKind.AUTH,
    openai.OAuthError: ErrorKind.AUTH,
    openai.PermissionDeniedError: ErrorKind.AUTH,
    openai.NotFoundError: ErrorKind.BAD_REQUEST,
    openai.ConflictError: ErrorKind.SERVER,
    openai.UnprocessableEntityError: ErrorKind.BAD_REQUEST,
    openai.RateLimitError: ErrorKind.RATE_LIMITED,
    openai.InternalServerError: ErrorKind.SERVER,
    openai.APIStatusError: ErrorKind.BAD_REQUEST,
    openai.APIConnectionError: ErrorKind.NETWORK,
    openai.APITimeoutError: ErrorKind.TIMEOUT,
    openai.APIResponseValidationError: ErrorKind.INVALID_RESPONSE,
    openai.APIError: ErrorKind.SERVER,
    openai.OpenAIError: ErrorKind.SERVER,
    openai.LengthFinishReasonError: ErrorKind.INVALID_RESPONSE,
    openai.ContentFilterFinishReasonError: ErrorKind.BAD_REQUEST,
    openai.WebSocketConnectionClosedError: ErrorKind.NETWORK,
    openai.WebSocketQueueFullError: ErrorKind.NETWORK,
    openai._exceptions.SubjectTokenProviderError: ErrorKind.AUTH,
}
STATUS = {
    openai.BadRequestError: 400,
    openai.AuthenticationError: 401,
    openai.PermissionDeniedError: 403,
    openai.NotFoundError: 404,
    openai.ConflictError: 409,
    openai.UnprocessableEntityError: 422,
    openai.RateLimitError: 429,
    openai.InternalServerError: 500,
    openai.APIStatusError: 418,
}


def instance(cls: type[BaseException]) -> BaseException:
    if cls is openai.OAuthError:
        response = httpx2.Response(401, request=REQUEST)
        return openai.OAuthError(response=response, body={"error": "invalid_grant"})
    if cls in STATUS:
        return status_error(cls, STATUS[cls])
    if cls is openai.APITimeoutError:
        return openai.APITimeoutError(REQUEST)
    if cls is openai.APIConnectionError:
        return openai.APIConnectionError(request=REQUEST)
    if cls is openai.APIResponseValidationError:
        return openai.APIResponseValidationError(
            httpx2.Response(200, request=REQUEST), body="<html>"
        )
    if cls is openai.APIError:
        return openai.APIError("stream error", REQUEST, body=None)
    return bare(cls)  # type: ignore[arg-type]


def sdk_error_classes() -> set[type[BaseException]]:
    exported = [*vars(openai).values(), *vars(openai._exceptions).values()]
    errors = {c for c in exported if inspect.isclass(c) and issubclass(c, openai.OpenAIError)}
    return {c for c in errors if not c.__name__.startswith("_")}


def test_the_table_covers_every_error_class_the_sdk_exports() -> None:
    """A new SDK error class fails this test until someone decides its kind."""
    assert sdk_error_classes() - set(EXPECTED) == set()


@pytest.mark.parametrize("cls", sorted(EXPECTED, key=str))
def test_each_sdk_error_maps_to_its_kind(cls: type[BaseException]) -> None:
    """Each SDK error becomes the documented kind, never the unclassified 'exception'."""
    assert classify_error(instance(cls)).kind is EXPECTED[cls]


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (httpx2.ConnectError("refused"), ErrorKind.NETWORK),
        (httpx2.RemoteProtocolError("peer closed connection"), ErrorKind.NETWORK),
        (httpx2.ReadTimeout("slow"), ErrorKind.TIMEOUT),
        (httpx2.ReadError("reset"), ErrorKind.NETWORK),
    ],
)
def test_transport_errors_that_escape_the_sdk_are_classified(
    error: Exception, kind: ErrorKind
) -> None:
    """A raw httpx2 error (possible mid-stream) still lands on the taxonomy."""
    assert classify_error(error).kind is kind


@pytest.mark.parametrize(
    ("status", "code", "kind", "retryable"),
    [
        (400, "context_length_exceeded", ErrorKind.BAD_REQUEST, False),
        (401, "invalid_api_key", ErrorKind.AUTH, False),
        (403, None, ErrorKind.AUTH, False),
        (404, None, ErrorKind.BAD_REQUEST, False),
        (408, None, ErrorKind.TIMEOUT, True),
        (409, None, ErrorKind.SERVER, True),
        (422, None, ErrorKind.BAD_REQUEST, False),
        (429, "rate_limit_exceeded", ErrorKind.RATE_LIMITED, True),
        (429, "insufficient_quota", ErrorKind.AUTH, False),
        (500, None, ErrorKind.SERVER, True),
        (502, None, ErrorKind.SERVER, True),
        (503, None, ErrorKind.SERVER, True),
    ],
)
def test_status_codes_map_to_kinds_and_retryability(
    status: int, code: str | None, kind: ErrorKind, retryable: bool
) -> None:
    """The status (and for 429 the code) decides the kind and whether retrying can help."""
    error = classify_error(status_error(openai.APIStatusError, status, code))
    assert (error.kind, error.retryable, error.status_code) == (kind, retryable, status)


def test_retry_after_prefers_milliseconds_then_seconds_then_a_date() -> None:
    """retry-after-ms wins; Retry-After seconds next; an HTTP date is turned into seconds."""
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"Retry-After": "2"}) == 2.0
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after({"retry-after": soon}) or 0) <= 30
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None
    error = classify_error(
        status_error(openai.RateLimitError, 429, None, **{"retry-after-ms": "250"})
    )
    assert error.retry_after == 0.25


def test_keys_in_error_messages_are_redacted() -> None:
    """An API key quoted back by the server never reaches our messages."""
    error = status_error(openai.AuthenticationError, 401)
    error.message = "Incorrect API key provided: sk-proj-abcdefghijklmnop1234. Find your key..."
    assert "abcdefghijklmnop1234" not in classify_error(error).message
