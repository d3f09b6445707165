"""Gemini's Batch Mode behind the ``Batches`` interface the batch dispatch uses.

Batch Mode is Gemini's own API, one model a batch:
``POST {root}/models/{model}:batchGenerateContent`` with ``{"batch": {"displayName",
"inputConfig": ...}}`` answers a long-running operation (``{"name": "batches/...", "metadata":
{"state", "batchStats", ...}, "done", "response"}``), polled at ``GET {root}/batches/{id}`` and
cancelled at ``POST {root}/batches/{id}:cancel``. The input is either inline
(``inputConfig.requests.requests``: ``[{"request": GenerateContentRequest, "metadata": {"key"}}]``,
up to 20 MB) or a JSONL file of ``{"key", "request"}`` lines uploaded to the File API
(``{upload root}/files``, resumable protocol) and named by ``inputConfig.fileName``; the output
is inline (``response.inlinedResponses.inlinedResponses``: ``{"response" | "error", "metadata":
{"key"}}``) or a JSONL file (``response.responsesFile``, fetched at ``{download
root}/{file}:download?alt=media``) of ``{"key", "response" | "error"}`` lines.

As for Anthropic's batches, ``upload`` keeps the packed lines in memory under a digest of their
bytes; ``create`` sends them (inline when they fit, else as a file), with that digest as the
batch's ``displayName``, so ``find`` finds a batch a crashed process made by listing the
batches. ``download`` writes each result as the Batch API's result line that
``batchapi/results.py`` reads: its ``id`` the provider's ``key``, a response's bytes whole as
a 200 body, an error (a ``google.rpc.Status``, whose code is gRPC's) under the HTTP status that
code stands for.
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
from fanwise.jsonspans import items_text, member_text
from fanwise.models.base import Endpoint
from fanwise.models.bodies import error_from_body, error_message, lowered_headers
from fanwise.models.gemini import gemini_error
from fanwise.models.gemini_native import DEFAULT_ROOT, native_root
from fanwise.outcome import (
    BadRequest,
    CallError,
    CallTimeout,
    InvalidResponse,
    NetworkError,
)

LIMITS = BatchLimits(max_requests=100_000, max_bytes=2 * 1024 * 1024 * 1024)
"""A Batch Mode input file may hold up to 2 GB."""
INLINE_MAX = 20 * 1024 * 1024
"""Inline requests may total 20 MB; bigger batches go as a file."""
_STATES = {
    "PENDING": "validating",
    "RUNNING": "in_progress",
    "SUCCEEDED": "completed",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
    "EXPIRED": "expired",
}
_GRPC_HTTP = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 9: 400, 13: 500,
              14: 503, 16: 401}  # fmt: skip
"""The HTTP status each google.rpc.Code stands for (a batch line's error carries gRPC's)."""


class GeminiBatchClient(HeldLines):
    """Create, poll, download and cancel Gemini batches over aiohttp."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        environ: Mapping[str, str] = os.environ,
        inline_max: int = INLINE_MAX,
    ) -> None:
        key = api_key or environ.get("GEMINI_API_KEY") or environ.get("GOOGLE_API_KEY")
        if not key:
            raise ValueError("an API key is needed: pass api_key or set GEMINI_API_KEY")
        self.root = native_root(base_url or environ.get("GEMINI_BASE_URL") or DEFAULT_ROOT)
        host, _, version = self.root.rpartition("/")
        self.upload_url = f"{host}/upload/{version}/files"
        self.download_root = f"{host}/download/{version}"
        self.inline_max = inline_max
        self._headers = {"x-goog-api-key": key}
        super().__init__()

    async def create(
        self, input_file_id: str, endpoint: str, metadata: Mapping[str, str] | None = None
    ) -> BatchState:
        data = self.held(input_file_id)
        model = Endpoint.model_in_url(endpoint)
        if model is None or Endpoint.from_url(endpoint) is not Endpoint.GENERATE:
            raise BadRequest(
                f"Gemini's Batch Mode here takes generateContent requests, not {endpoint}: "
                "send these lines with --engine live",
                code="unsupported_batch_endpoint",
            )
        items = [_item(json.loads(raw)) for raw in data.splitlines() if raw.strip()]
        if len(data) <= self.inline_max:
            inline = [{"request": r, "metadata": {"key": k}} for k, r in items]
            config: dict[str, Any] = {"requests": {"requests": inline}}
        else:
            lines = b"".join(
                json.dumps({"key": k, "request": r}, ensure_ascii=False).encode() + b"\n"
                for k, r in items
            )
            config = {"fileName": await self._upload_file(input_file_id, lines)}
        batch = {"batch": {"displayName": input_file_id, "inputConfig": config}}
        url = f"{self.root}/models/{model}:batchGenerateContent"
        state = _state(await self._send("POST", url, json.dumps(batch).encode()))
        self.release(input_file_id)
        return state

    async def retrieve(self, batch_id: str) -> BatchState:
        return _state(await self._send("GET", f"{self.root}/{batch_id}"))

    async def cancel(self, batch_id: str) -> BatchState:
        await self._send("POST", f"{self.root}/{batch_id}:cancel", b"{}")
        return await self.retrieve(batch_id)

    async def download(self, file_id: str) -> bytes:
        """The results of batch ``file_id``, as the Batch API's result lines."""
        text = (await self._send("GET", f"{self.root}/{file_id}")).decode()
        named = json.loads(text).get("response") or {}
        if isinstance(named.get("responsesFile"), str):
            url = f"{self.download_root}/{named['responsesFile']}:download?alt=media"
            raw = (await self._send("GET", url)).decode()
            return b"\n".join(result_bytes(line) for line in raw.splitlines() if line.strip())
        found = member_text(text, "response", "inlinedResponses")
        inner = member_text(found, "inlinedResponses") if found else None
        return b"\n".join(result_bytes(item) for item in items_text(inner or found or "[]"))

    async def find(self, input_file_id: str) -> BatchState | None:
        """The batch made from these lines (its ``displayName``), among the newest."""
        listed = json.loads(await self._send("GET", f"{self.root}/batches?pageSize=100"))
        for operation in listed.get("operations") or listed.get("batches") or []:
            meta = operation.get("metadata") or operation
            if isinstance(meta, dict) and meta.get("displayName") == input_file_id:
                return _state(json.dumps(operation).encode())
        return None

    async def _upload_file(self, name: str, data: bytes) -> str:
        """The File API's resumable upload: start, then upload and finalize in one request."""
        start = {
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(len(data)),
            "X-Goog-Upload-Header-Content-Type": "application/jsonl",
        }
        meta = json.dumps({"file": {"displayName": name}}).encode()
        _, headers = await self._request("POST", self.upload_url, meta, start)
        target = headers.get("x-goog-upload-url")
        if not target:
            raise InvalidResponse("the File API gave no upload URL")
        finish = {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}
        raw, _ = await self._request("POST", target, data, finish)
        uploaded = json.loads(raw).get("file") or {}
        if not isinstance(uploaded.get("name"), str):
            raise InvalidResponse(f"the File API's answer names no file: {raw[:200]!r}")
        return str(uploaded["name"])

    async def _send(self, method: str, url: str, body: bytes | None = None) -> bytes:
        raw, _ = await self._request(method, url, body, {"content-type": "application/json"})
        return raw

    async def _request(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[bytes, dict[str, str]]:
        """One request, on a session of its own: a batch is looked at seldom."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http,
                http.request(
                    method, url, data=body, headers={**self._headers, **headers}
                ) as response,
            ):
                raw = await response.read()
                lowered = lowered_headers(response.headers)
                if response.status >= 300:
                    raise gemini_error(error_from_body(response.status, raw, lowered))
                return raw, lowered
        except CallError:
            raise
        except TimeoutError as exc:
            raise CallTimeout(error_message(exc)) from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(error_message(exc)) from exc


def _item(line: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(key, request)`` of one packed line: its custom_id, its body without ``model``."""
    body = line["body"]
    return str(line["custom_id"]), {k: v for k, v in body.items() if k != "model"}


def _state(raw: bytes) -> BatchState:
    try:
        operation = json.loads(raw)
        meta = operation.get("metadata") or {}
        state = str(meta.get("state", "")).rsplit("_STATE_", 1)[-1]
        name = str(operation.get("name") or meta["name"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidResponse(f"not a Gemini batch operation: {raw[:200]!r}") from exc
    stats = meta.get("batchStats") or {}
    status = _STATES.get(state, "in_progress")
    has_output = isinstance(operation.get("response"), dict)
    error = operation.get("error")
    errors = (str(error.get("message")),) if isinstance(error, dict) else ()
    return BatchState(
        id=name,
        status=status,
        total=_count(stats, "requestCount"),
        completed=_count(stats, "successfulRequestCount"),
        failed=_count(stats, "failedRequestCount"),
        output_file_id=name if has_output else None,
        errors=errors,
    )


def result_bytes(raw: str) -> bytes:
    """One inline or file result (``{"response" | "error", "metadata": {"key"}}`` or ``{"key",
    "response" | "error"}``) as the Batch API's result line, the response's bytes kept."""
    record = json.loads(raw)
    meta = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    key = str(record.get("key") or meta.get("key") or "")
    head = json.dumps({"id": key, "custom_id": key}, ensure_ascii=False)[:-1]
    body = member_text(raw, "response")
    if body is not None:
        return f'{head},"response":{{"status_code":200,"body":{body}}},"error":null}}'.encode()
    error = record.get("error") if isinstance(record.get("error"), dict) else {}
    code = int(error.get("code") or 2)
    status = code if code >= 100 else _GRPC_HTTP.get(code, 500)
    envelope = json.dumps({"error": error}, ensure_ascii=False)
    return f'{head},"response":{{"status_code":{status},"body":{envelope}}}}}'.encode()


def _count(stats: Mapping[str, Any], name: str) -> int:
    try:
        return int(stats.get(name) or 0)  # int64 fields come as strings
    except (TypeError, ValueError):
        return 0


__all__ = ["INLINE_MAX", "LIMITS", "GeminiBatchClient", "result_bytes"]
