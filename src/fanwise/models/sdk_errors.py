"""What the two SDK transports (``models/openai.py``, ``models/anthropic_sdk.py``) share in
naming a failure: its message, the error body, and the ``try`` around a call.

Each SDK keeps its own ``classify`` (the checks and their order differ); this is the frame:
every SDK, transport and decoding error leaves a call as one of fanwise's classified errors,
with the original as its ``__cause__``, and no message carries an API key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx2

from fanwise.outcome import CallError, InvalidResponse
from fanwise.redact import redact

Classify = Callable[[BaseException], CallError]


def sdk_message(exc: BaseException) -> str:
    """The error's own words (the SDK's ``message`` when it has one), redacted and bounded."""
    return redact(str(getattr(exc, "message", None) or exc or type(exc).__name__))[:500]


def response_content(response: httpx2.Response) -> bytes | None:
    """The error body, when the SDK read it (it does before raising a status error)."""
    try:
        return response.content
    except httpx2.ResponseNotRead:
        return None


@contextmanager
def sdk_errors(sdk_error: type[Exception], classify: Classify) -> Iterator[None]:
    """Turn what escapes a call into a ``CallError``: the SDK's errors (``sdk_error``), the
    transport's and a body that is not JSON through ``classify``; text that is not UTF-8 is
    ``invalid_response``; fanwise's own errors pass as they are."""
    try:
        yield
    except CallError:
        raise
    except (sdk_error, httpx2.HTTPError, json.JSONDecodeError) as exc:
        raise classify(exc) from exc
    except UnicodeDecodeError as exc:
        raise InvalidResponse(redact(str(exc))[:500]) from exc


__all__ = ["Classify", "response_content", "sdk_errors", "sdk_message"]
