"""What every transport to an OpenAI-compatible server shares, so they cannot drift apart.

The request bodies of both APIs, and the reading of an HTTP error status (and its
``Retry-After``) into the taxonomy. ``models/openai.py`` (the official SDK) and
``models/fast.py`` (aiohttp) both use these: the same request goes out and the same status
comes back as the same kind, whichever transport carries it.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable, Mapping
from typing import Any

from fanwise.limits._quotas import parse_duration
from fanwise.models.base import Request
from fanwise.outcome import AuthError, BadRequest, CallError, CallTimeout, RateLimited, ServerError


def responses_body(request: Request) -> dict[str, Any]:
    """The Responses API parameters for ``request`` (no ``stream`` flag)."""
    body: dict[str, Any] = {"model": request.model, "input": request.prompt}
    if request.instructions:
        body["instructions"] = request.instructions
    if request.reasoning_effort:
        body["reasoning"] = {"effort": request.reasoning_effort}
    if request.max_output_tokens is not None:
        body["max_output_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def chat_body(request: Request) -> dict[str, Any]:
    """The Chat Completions parameters for ``request`` (no ``stream`` flag)."""
    messages: list[dict[str, str]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    messages.append({"role": "user", "content": request.prompt})
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.reasoning_effort:
        body["reasoning_effort"] = request.reasoning_effort
    if request.max_output_tokens is not None:
        body["max_completion_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def status_error(
    status: int,
    message: str,
    *,
    code: str | None,
    headers: Mapping[str, str],
    body: object = None,
) -> CallError:
    """An HTTP error status as a classified error; ``headers`` are kept for the limiter.

    The wait is the headers' (``retry_after``), else the ``RetryInfo`` of the parsed ``body``
    (Gemini says how long only there)."""
    kept = dict(headers)  # the limiter reads x-ratelimit-* from errors too
    wait = retry_after(headers)
    if wait is None and status in (429, 503):
        wait = retry_delay(body)
    if status == 429:
        if code == "insufficient_quota":
            return AuthError(
                f"{message} (out of quota: check the account's billing)", status_code=429, code=code
            )
        return RateLimited(message, status_code=429, retry_after=wait, code=code, headers=kept)
    if status in (401, 403):
        return AuthError(message, status_code=status, code=code)
    if status == 408:
        return CallTimeout(message, status_code=status, code=code)
    if status == 409 or status >= 500:
        return ServerError(message, status_code=status, retry_after=wait, code=code, headers=kept)
    return BadRequest(message, status_code=status, code=code)


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


__all__ = ["chat_body", "responses_body", "retry_after", "retry_delay", "status_error"]
