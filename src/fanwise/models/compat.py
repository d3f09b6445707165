"""What every transport to an OpenAI-compatible server shares, so they cannot drift apart.

The body that goes out for a request (the user's own, plus the stream flags a streamed call
needs), and the reading of an HTTP error status (and its ``Retry-After``) into the taxonomy.
``models/openai.py`` (the official SDK) and ``models/fast.py`` (aiohttp) both use these: the
same request goes out and the same status comes back as the same kind, whichever transport
carries it.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from fanwise.limits._quotas import parse_duration
from fanwise.models.base import Endpoint, Request
from fanwise.outcome import AuthError, BadRequest, CallError, CallTimeout, RateLimited, ServerError

NO_KEY = "not-needed"
"""The key sent to a server given by its base URL when none is set: local servers (vLLM,
Ollama, LM Studio...) take any; set ``OPENAI_API_KEY`` for one that checks."""


def resolve_api_key(api_key: str | None, base_url: str | None, environ: Mapping[str, str]) -> str:
    """The key to send: ``api_key``, else ``$OPENAI_API_KEY``; for a server named by its base
    URL (argument or ``$OPENAI_BASE_URL``) a placeholder; else a ``ValueError`` saying what to
    set (rather than the SDK's own error from deep inside its constructor)."""
    key = api_key or environ.get("OPENAI_API_KEY")
    if key:
        return key
    if base_url or environ.get("OPENAI_BASE_URL"):
        return NO_KEY
    raise ValueError(
        "no OpenAI API key: set the OPENAI_API_KEY environment variable or pass api_key=...; "
        "for a local OpenAI-compatible server, pass base_url=... (no key is needed then)"
    )


def streamed_body(request: Request) -> dict[str, Any]:
    """The request's body asking for a stream; a field the user set is left as it is."""
    body = {**request.body, "stream": True}
    if request.endpoint is Endpoint.CHAT and "stream_options" not in body:
        body["stream_options"] = {"include_usage": True}  # or the last chunk has no usage
    return body


def status_error(
    status: int,
    message: str,
    *,
    code: str | None,
    headers: Mapping[str, str],
    body: bytes | None = None,
) -> CallError:
    """An HTTP error status as a classified error; ``headers`` are kept for the limiter, and
    ``body`` (the server's error body, as it came) for whoever reports the failure.

    The wait is the headers' (``retry_after``), else the ``RetryInfo`` in the body (Gemini says
    how long only there)."""
    kept = dict(headers)  # the limiter reads x-ratelimit-* from errors too
    wait = retry_after(headers)
    if wait is None and status in (429, 503):
        wait = retry_delay(_parsed(body))
    if status == 429:
        if code == "insufficient_quota":
            return AuthError(
                f"{message} (out of quota: check the account's billing)",
                status_code=429,
                code=code,
                body=body,
            )
        return RateLimited(
            message, status_code=429, retry_after=wait, code=code, headers=kept, body=body
        )
    if status in (401, 403):
        return AuthError(message, status_code=status, code=code, body=body)
    if status == 408:
        return CallTimeout(message, status_code=status, code=code, body=body)
    if status >= 500 and unsupported_parameter(message):  # llama-cpp-python's: not transient
        return BadRequest(
            message, status_code=status, code=code or "unsupported_parameter", body=body
        )
    if status == 409 or status >= 500:
        return ServerError(
            message, status_code=status, retry_after=wait, code=code, headers=kept, body=body
        )
    return BadRequest(message, status_code=status, code=code, body=body)


UNSUPPORTED = re.compile(
    r"unsupported param|not supported|unrecognized request argument|unknown parameter"
    r"|extra inputs are not permitted|validation error|input should be",
    re.IGNORECASE,
)
"""How servers say a request names a parameter or value they do not take: OpenAI's words,
pydantic's (llama-cpp-python's 500, vLLM's 400) and llama.cpp's."""


def unsupported_parameter(message: str) -> bool:
    """Whether an error message says the request used a parameter the server does not take."""
    return UNSUPPORTED.search(message) is not None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's wait in seconds: ``retry-after-ms`` first, then ``Retry-After`` (or a date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def _parsed(body: bytes | None) -> object:
    """An error body as JSON, or None: read only when the headers gave no wait."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def retry_delay(body: object, depth: int = 0) -> float | None:
    """Google's ``RetryInfo.retryDelay`` (``"45.8s"``) anywhere in an error body, in seconds."""
    if depth > 4:
        return None
    if isinstance(body, Mapping):
        if body.get("@type") == RETRY_INFO and isinstance(body.get("retryDelay"), str):
            return parse_duration(body["retryDelay"])
        children: Iterable[object] = body.values()
    elif isinstance(body, list):
        children = body
    else:
        return None
    for child in children:
        found = retry_delay(child, depth + 1)
        if found is not None:
            return found
    return None


__all__ = ["retry_after", "retry_delay", "status_error", "streamed_body", "unsupported_parameter"]
