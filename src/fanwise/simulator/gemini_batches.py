"""Gemini's Batch Mode and File API, on the simulator's accelerated batch clock.

``POST /v1beta/models/{model}:batchGenerateContent`` takes ``{"batch": {"displayName",
"inputConfig": {"requests": {"requests": [{"request", "metadata": {"key"}}]}} | {"fileName":
"files/..."}}}`` and answers the operation ``{"name": "batches/...", "metadata": {"@type",
"model", "displayName", "state", "batchStats", ...}, "done"}``; ``GET /v1beta/batches/{id}``
shows it (``BATCH_STATE_PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``CANCELLED``,
``EXPIRED``), with ``response`` once ended: ``inlinedResponses`` for inline input, a
``responsesFile`` for file input; ``POST /v1beta/batches/{id}:cancel`` cancels; ``GET
/v1beta/batches`` lists the newest. The File API: ``POST /upload/v1beta/files`` (resumable:
``start``, then ``upload, finalize`` at the URL it gives), ``GET
/download/v1beta/files/{id}:download?alt=media``.

The batch's life is the OpenAI batch service's (``simulator/batches.py``): the same timing,
expiry and cancelling, each line run through the native face (``simulator/gemini_native.py``),
so scripts and faults reach batch lines too. A line's error is a ``google.rpc.Status``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fanwise.simulator import bodies
from fanwise.simulator.batches import ApiError, BatchService, Json
from fanwise.simulator.reply import JSON

_URL = "/v1/chat/completions"  # the service's lines run through the native face (run_line)
BATCH = re.compile(r"/v1beta/models/(?P<model>[^/:]+):batchGenerateContent")
_BATCHES = re.compile(r"/v1beta/batches(?:/(?P<id>[^/:]+)(?P<cancel>:cancel)?)?")
_UPLOAD = "/upload/v1beta/files"
_DOWNLOAD = re.compile(r"/download/v1beta/files/(?P<id>[^/:]+):download")
_STATE = {
    "validating": "PENDING",
    "in_progress": "RUNNING",
    "finalizing": "RUNNING",
    "cancelling": "RUNNING",
    "completed": "SUCCEEDED",
    "failed": "FAILED",
    "cancelled": "CANCELLED",
    "expired": "EXPIRED",
}
_ENDED = ("completed", "failed", "expired", "cancelled")
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 500: 13, 503: 14, 504: 4}
_STATUS = {
    3: "INVALID_ARGUMENT",
    16: "UNAUTHENTICATED",
    7: "PERMISSION_DENIED",
    5: "NOT_FOUND",
    8: "RESOURCE_EXHAUSTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    4: "DEADLINE_EXCEEDED",
}


def handles(path: str) -> bool:
    """Whether a path is Batch Mode's or the File API's."""
    return bool(
        BATCH.fullmatch(path)
        or _BATCHES.fullmatch(path)
        or path == _UPLOAD
        or _DOWNLOAD.fullmatch(path)
    )


class GeminiBatches:
    """The batches and files of one simulated Gemini project, over a batch service of their own."""

    def __init__(self, service: BatchService, root: Callable[[], str]) -> None:
        self.service = service
        self.root = root
        self.files: dict[str, bytes] = {}
        self.uploads: dict[str, str] = {}  # upload id -> the file's display name
        self.inline: dict[str, bool] = {}  # batch id -> made from inline requests
        self.names: dict[str, str] = {}  # batch id -> displayName
        self.models: dict[str, str] = {}

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._route(request)
        except ApiError as exc:
            code = _GRPC.get(exc.status, 2)
            error = {
                "code": exc.status,
                "message": exc.message,
                "status": _STATUS.get(code, "UNKNOWN"),
            }
            return _json({"error": error}, exc.status)

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if (found := BATCH.fullmatch(path)) and request.method == "POST":
            return await self._create(request, found.group("model"))
        if path == _UPLOAD and request.method == "POST":
            return await self._upload(request)
        if (found := _DOWNLOAD.fullmatch(path)) and request.method == "GET":
            data = self.files.get(found.group("id"))
            if data is None:
                raise ApiError(404, f"File files/{found.group('id')} not found.")
            return web.Response(body=data, headers={"Content-Type": "application/octet-stream"})
        if found := _BATCHES.fullmatch(path):
            batch_id = found.group("id")
            if batch_id is None and request.method == "GET":
                ids = list(reversed(self.inline))[: int(request.query.get("pageSize", "20"))]
                return _json({"operations": [self._view(i) for i in ids]})
            own = self._own(batch_id)
            if found.group("cancel") and request.method == "POST":
                self.service.retrieve(own)
                if self.service.batches[own].status not in _ENDED:
                    self.service.cancel(own)
                return _json({})
            if request.method == "GET":
                return _json(self._view(own))
        raise ApiError(404, f"Not found: {request.method} {path}")

    async def _create(self, request: web.BaseRequest, model: str) -> web.Response:
        try:
            data = json.loads(await request.read())
            batch = data["batch"]
            config = batch["inputConfig"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, "batch.inputConfig: Field required") from None
        if isinstance(config.get("fileName"), str):
            source = self.files.get(config["fileName"].removeprefix("files/"))
            if source is None:
                raise ApiError(404, f"File {config['fileName']} not found.")
            items = [json.loads(line) for line in source.splitlines() if line.strip()]
            pairs = [(str(i.get("key")), i.get("request")) for i in items]
            inline = False
        else:
            requests = ((config.get("requests") or {}).get("requests")) or []
            pairs = [
                (str((r.get("metadata") or {}).get("key")), r.get("request")) for r in requests
            ]
            inline = True
        if not pairs or any(not isinstance(r, dict) for _, r in pairs):
            raise ApiError(400, "batch.inputConfig: each request must be an object")
        lines = [
            json.dumps({"custom_id": key, "method": "POST", "url": _URL,
                        "body": {"model": model, "request": req}}).encode()
            for key, req in pairs
        ]  # fmt: skip
        stored = self.service._store("gemini_batch.jsonl", "batch", b"\n".join(lines) + b"\n")
        view = self.service.create(
            {"input_file_id": stored.id, "endpoint": _URL, "completion_window": "24h"}
        )
        self.inline[view["id"]] = inline
        self.names[view["id"]] = str(batch.get("displayName") or "")
        self.models[view["id"]] = model
        return _json(self._view(view["id"]))

    async def _upload(self, request: web.BaseRequest) -> web.Response:
        command = request.headers.get("X-Goog-Upload-Command", "")
        if command == "start":
            meta = json.loads(await request.read() or b"{}")
            upload = f"u{len(self.uploads) + 1}"
            self.uploads[upload] = str((meta.get("file") or {}).get("displayName") or upload)
            url = f"{self.root()}{_UPLOAD}?upload_id={upload}"
            return web.Response(
                headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"}
            )
        upload = request.query.get("upload_id", "")
        if "finalize" not in command or upload not in self.uploads:
            raise ApiError(400, "X-Goog-Upload-Command: start, then upload, finalize")
        file_id = f"f{len(self.files) + 1}"
        self.files[file_id] = await request.read()
        name = f"files/{file_id}"
        size = str(len(self.files[file_id]))
        shown = self.uploads.pop(upload)
        return _json({"file": {"name": name, "displayName": shown, "sizeBytes": size}})

    def _own(self, batch_id: str | None) -> str:
        own = "batch_" + str(batch_id)
        if own not in self.service.batches or own not in self.inline:
            raise ApiError(404, f"Batch batches/{batch_id} not found.")
        return own

    def _view(self, own: str) -> Json:
        """The batch's operation, brought up to date."""
        openai = self.service.retrieve(own)
        batch = self.service.batches[own]
        ok = sum(1 for r in batch.done if _ok(r))
        name = "batches/" + own.removeprefix("batch_")
        meta: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
            "model": f"models/{self.models[own]}",
            "name": name,
            "displayName": self.names[own],
            "createTime": _time(openai["created_at"]),
            "state": "BATCH_STATE_" + _STATE.get(batch.status, "RUNNING"),
            "batchStats": {
                "requestCount": str(len(batch.lines)),
                "successfulRequestCount": str(ok),
                "failedRequestCount": str(len(batch.done) - ok),
                "pendingRequestCount": str(len(batch.lines) - len(batch.done)),
            },
        }
        operation: dict[str, Any] = {"name": name, "metadata": meta}
        if batch.status in _ENDED:
            operation["done"] = True
            results = [_result(r) for r in batch.done if r.get("response") is not None]
            if batch.status == "failed":
                operation["error"] = {"code": 3, "message": "the batch failed validation"}
            elif self.inline[own]:
                output = {"inlinedResponses": {"inlinedResponses": results}}
                operation["response"] = {"@type": _OUTPUT, **output}
            else:
                file_id = f"out-{own}"
                self.files[file_id] = b"".join(
                    bodies.dumps({"key": r["metadata"]["key"], **{k: v for k, v in r.items()
                                                                 if k != "metadata"}}) + b"\n"
                    for r in results
                )  # fmt: skip
                operation["response"] = {"@type": _OUTPUT, "responsesFile": f"files/{file_id}"}
        return operation


_OUTPUT = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput"


def _ok(record: Json) -> bool:
    response = record.get("response")
    return isinstance(response, dict) and 200 <= int(response["status_code"]) < 300


def _result(record: Json) -> Json:
    """An OpenAI-shaped batch record as an inlined response: the body, or a google.rpc.Status."""
    response = record["response"]
    key = {"key": record["custom_id"]}
    if _ok(record):
        return {"response": response["body"], "metadata": key}
    status = int(response["status_code"])
    body = response.get("body")
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else "simulated error"
    code = _GRPC.get(status, 2)
    status_error: dict[str, Any] = {"code": code, "message": message}
    if isinstance(error, dict) and error.get("details"):
        status_error["details"] = error["details"]
    return {"error": status_error, "metadata": key}


def _time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=bodies.dumps(data), headers={"Content-Type": JSON})


__all__ = ["BATCH", "GeminiBatches", "handles"]
