"""Result lines of a batch, read back into a completion or a classified error.

An output or error line is ``{"id", "custom_id", "response": {"status_code", "request_id",
"body"}, "error"}``. A 2xx body is read by the very code that reads a live answer
(``models.bodies``: a failed or empty response is an error), another status is classified as a
live call's HTTP error is; a line the batch never ran carries only ``error``, classified by its
code:

    batch_expired     timeout    the 24 h window closed first (retryable: send it again)
    batch_cancelled   cancelled  the batch was cancelled
    anything else     server     the Batch API could not run it (retryable)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from fanwise.batchapi.files import Api, endpoint_of, parse_custom_id
from fanwise.jsonspans import LINE_ID, member_text
from fanwise.models.anthropic_bodies import error_from_body as anthropic_error
from fanwise.models.base import Completion, Endpoint
from fanwise.models.bodies import READERS, error_from_body
from fanwise.models.gemini import gemini_error
from fanwise.models.gemini_native import read_native
from fanwise.outcome import CallError, CallTimeout, Cancelled, InvalidResponse, ServerError
from fanwise.redact import redact

Result = Completion | CallError
"""What one line says: the answer, or why there is none."""


def read_files(
    files: Iterable[bytes], calls: Iterable[tuple[int, str]], api: Api | Endpoint
) -> dict[int, Result]:
    """The result of each of ``calls`` (``(index, key)``) found in the output and error files.

    A line whose ``custom_id`` names no such call (another input, a changed key) is ignored;
    a call with no line is left out, for the caller to treat as lost.
    """
    endpoint = endpoint_of(api)
    wanted = dict(calls)
    found: dict[int, Result] = {}
    for data in files:
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            ids = parse_custom_id(record.get("custom_id", "")) if isinstance(record, dict) else None
            if ids is not None and wanted.get(ids[0]) == ids[1]:
                found[ids[0]] = read_result(record, endpoint, raw)
    return found


def read_result(
    record: Mapping[str, Any], api: Api | Endpoint, line: bytes | None = None
) -> Result:
    """The completion or error one result line holds; the completion keeps the body whole:
    its bytes as they are in ``line`` (the line as it came), and the line's own ``id``."""
    response = record.get("response")
    if not isinstance(response, Mapping):
        return _unrun(record.get("error"))
    status = response.get("status_code")
    body = response.get("body")
    if not isinstance(status, int) or not isinstance(body, Mapping):
        return InvalidResponse(f"the batch result line is not what the API sends: {record!r:.200}")
    raw = _body_bytes(line, body)
    headers = {"x-request-id": str(response["request_id"])} if response.get("request_id") else {}
    if isinstance(record.get("id"), str):
        headers[LINE_ID] = record["id"]
    endpoint = endpoint_of(api)
    if not 200 <= status < 300:
        if endpoint is Endpoint.MESSAGES:  # Anthropic's envelope, spend limits and all
            return anthropic_error(status, raw, headers)
        if endpoint.native:  # Google's: RetryInfo, per-day quotas
            return gemini_error(error_from_body(status, raw, headers))
        return error_from_body(status, raw, headers)
    try:
        if endpoint.native:
            return read_native(endpoint, raw, headers)
        return READERS[endpoint](dict(body), raw, headers)
    except CallError as exc:
        return exc


def _body_bytes(line: bytes | None, body: Mapping[str, Any]) -> bytes:
    """The body's bytes as the line holds them; made again only when it cannot be cut out."""
    if line is not None:
        try:
            text = member_text(line.decode(), "response", "body")
        except (UnicodeDecodeError, ValueError):
            text = None
        if text is not None:
            return text.encode()
    return json.dumps(body, ensure_ascii=False).encode()


def _unrun(error: object) -> CallError:
    details = error if isinstance(error, Mapping) else {}
    code = str(details.get("code") or "")
    message = redact(str(details.get("message") or "no detail"))[:500]
    if code == "batch_expired":
        return CallTimeout(f"not run: the batch's 24 h window closed first ({message})", code=code)
    if code == "batch_cancelled":
        return Cancelled(f"not run: the batch was cancelled ({message})", code=code)
    return ServerError(f"the Batch API did not run this request: {message}", code=code or None)


__all__ = ["Result", "read_files", "read_result"]
