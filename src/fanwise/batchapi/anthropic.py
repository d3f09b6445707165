"""Anthropic's Message Batches API behind the ``BatchClient`` interface the batch dispatch uses.

The dispatch (``batchapi/dispatch.py``, ``jobs.py``) uploads a file, makes it a batch, polls it,
downloads its results and finds a batch again after a crash; Anthropic's API has no files, so:

- ``upload`` keeps the packed lines in memory under a digest of their bytes (the ledger writes
  that id down, as it writes OpenAI's file id), and ``create`` sends them as one
  ``POST /v1/messages/batches``: each line's ``custom_id`` (``INDEX:KEY``, whose ``:`` Anthropic
  refuses) as ``INDEX-KEY``, each body unchanged as ``params``;
- a MessageBatch reads as a ``BatchState``: ``ended`` is final, its ``results_url`` is the
  "output file";
- ``download`` fetches the results and writes each line in the Batch API's result shape that
  ``batchapi/results.py`` reads: a succeeded Message whole as a 200 body, an errored one's error
  envelope whole under the status its type stands for, ``canceled`` and ``expired`` as OpenAI's
  ``batch_cancelled`` and ``batch_expired`` (so an expired line is sent again, as for OpenAI).

``find`` cannot tell which batch came from which lines (a MessageBatch names no input), so a
process that died between ``upload`` and ``create`` sends its lines again in a new batch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import aiohttp

from fanwise.batchapi.client import BatchState
from fanwise.batchapi.files import BatchLimits
from fanwise.batchapi.held import HeldLines
from fanwise.jsonspans import member_text
from fanwise.models.anthropic_bodies import VERSION, error_from_body
from fanwise.models.bodies import error_message, lowered_headers
from fanwise.outcome import CallError, CallTimeout, InvalidResponse, NetworkError

LIMITS = BatchLimits(max_requests=100_000, max_bytes=256 * 1024 * 1024)
"""A Message Batch holds at most 100,000 requests or 256 MB."""

_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class AnthropicBatchClient(HeldLines):
    """Create, poll, download and cancel Message Batches over aiohttp."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        key = api_key or environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ValueError("an API key is needed: pass api_key or set ANTHROPIC_API_KEY")
        root = base_url or environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        self.url = root.rstrip("/").removesuffix("/v1") + "/v1/messages/batches"
        self._headers = {"x-api-key": key, "anthropic-version": VERSION}
        super().__init__()

    async def create(
        self, input_file_id: str, endpoint: str, metadata: Mapping[str, str] | None = None
    ) -> BatchState:
        data = self.held(input_file_id)
        requests = []
        for raw in data.splitlines():
            if raw.strip():
                line = json.loads(raw)
                custom = str(line["custom_id"]).replace(":", "-", 1)
                requests.append({"custom_id": custom, "params": line["body"]})
        body = json.dumps({"requests": requests}, ensure_ascii=False).encode()
        state = self._state(await self._send("POST", self.url, body))
        self.release(input_file_id)
        return state

    async def retrieve(self, batch_id: str) -> BatchState:
        return self._state(await self._send("GET", f"{self.url}/{batch_id}"))

    async def cancel(self, batch_id: str) -> BatchState:
        return self._state(await self._send("POST", f"{self.url}/{batch_id}/cancel"))

    async def download(self, file_id: str) -> bytes:
        """The results of batch ``file_id``, as the Batch API's result lines."""
        raw = await self._send("GET", f"{self.url}/{file_id}/results")
        return b"\n".join(result_bytes(line) for line in raw.splitlines() if line.strip())

    async def find(self, input_file_id: str) -> BatchState | None:
        return None  # a MessageBatch names no input: see the module's docstring

    def _state(self, raw: bytes) -> BatchState:
        try:
            batch = json.loads(raw)
            counts = batch.get("request_counts") or {}
            status = str(batch["processing_status"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidResponse(f"not a MessageBatch: {raw[:200]!r}") from exc
        failed = sum(int(counts.get(k, 0)) for k in ("errored", "canceled", "expired"))
        succeeded = int(counts.get("succeeded", 0))
        ended = status == "ended"
        return BatchState(
            id=str(batch["id"]),
            status="completed" if ended else ("cancelling" if status == "canceling" else status),
            total=int(counts.get("processing", 0)) + succeeded + failed,
            completed=succeeded,
            failed=failed,
            output_file_id=str(batch["id"]) if ended else None,
        )

    async def _send(self, method: str, url: str, body: bytes | None = None) -> bytes:
        """One request, on a session of its own: a batch is looked at seldom, and nothing is
        left open to close."""
        headers = {**self._headers, "content-type": "application/json"}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http,
                http.request(method, url, data=body, headers=headers) as response,
            ):
                raw = await response.read()
                if response.status >= 300:
                    raise error_from_body(response.status, raw, lowered_headers(response.headers))
                return raw
        except CallError:
            raise
        except TimeoutError as exc:
            raise CallTimeout(error_message(exc)) from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(error_message(exc)) from exc


def result_bytes(raw: bytes) -> bytes:
    """One Message Batches result line as the Batch API's result line, its ``id`` the result's
    own ``custom_id`` and its body the Message's (or error envelope's) bytes as they came."""
    record = json.loads(raw)
    line = result_line(record)
    response = line.get("response")
    if not isinstance(response, dict):
        return json.dumps(line, ensure_ascii=False).encode()
    text = raw.decode()
    kind = "message" if response["status_code"] == 200 else "error"
    body = member_text(text, "result", kind)
    if body is None:
        return json.dumps(line, ensure_ascii=False).encode()
    head = json.dumps({"id": line["id"], "custom_id": line["custom_id"]}, ensure_ascii=False)
    status = response["status_code"]
    tail = f',"response":{{"status_code":{status},"body":{body}}},"error":null}}'
    return (head[:-1] + tail).encode()


def result_line(record: Mapping[str, Any]) -> dict[str, Any]:
    """One Message Batches result as the Batch API's result line; the body is kept whole."""
    given = str(record.get("custom_id", ""))
    custom = given.replace("-", ":", 1)
    result = record.get("result")
    result = result if isinstance(result, Mapping) else {}
    kind = result.get("type")
    if kind == "succeeded":
        response = {"status_code": 200, "body": result.get("message")}
        return {"id": given, "custom_id": custom, "response": response, "error": None}
    if kind == "errored":
        envelope = result.get("error")
        error = envelope.get("error") if isinstance(envelope, Mapping) else None
        error_type = error.get("type") if isinstance(error, Mapping) else None
        status = _STATUS.get(str(error_type), 500)
        response = {"status_code": status, "body": envelope}
        return {"id": given, "custom_id": custom, "response": response}
    code = {"canceled": "batch_cancelled", "expired": "batch_expired"}.get(str(kind), "")
    error = {"code": code, "message": f"the request was {kind or 'not run'}"}
    return {"id": given, "custom_id": custom, "response": None, "error": error}


__all__ = ["LIMITS", "AnthropicBatchClient", "result_bytes", "result_line"]
