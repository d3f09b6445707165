"""Anthropic's Message Batches API, on the simulator's accelerated batch clock.

``POST /v1/messages/batches`` takes ``{"requests": [{"custom_id", "params"}]}`` (up to 100,000
requests or 256 MB), ``GET .../{id}`` shows the MessageBatch (``processing_status``
``in_progress``, ``canceling`` or ``ended``, and ``request_counts`` of ``processing``,
``succeeded``, ``errored``, ``canceled``, ``expired``), ``GET .../{id}/results`` streams one
JSONL line per request once it has ended (``{"custom_id", "result": {"type": "succeeded",
"message"} | {"type": "errored", "error"} | {"type": "canceled"} | {"type": "expired"}}``, in
any order), ``POST .../{id}/cancel`` cancels, ``GET /v1/messages/batches`` lists the newest.

The batch's life is the OpenAI batch service's (``simulator/batches.py``): the same timing,
expiry and cancelling, each line run through the simulator's brain by the Messages face
(``simulator/anthropic.py``), so scripts and faults reach batch lines too. Refusals use
Anthropic's error envelope.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fanwise.simulator import bodies
from fanwise.simulator.batches import ApiError, BatchService, Json
from fanwise.simulator.reply import JSON

PREFIX = "/v1/messages/batches"
MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_URL = "/v1/chat/completions"  # the service's lines run through the Messages face (run_line)
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(PREFIX), "create"),
    ("GET", re.compile(PREFIX), "list"),
    ("GET", re.compile(PREFIX + r"/(?P<id>[^/]+)"), "retrieve"),
    ("GET", re.compile(PREFIX + r"/(?P<id>[^/]+)/results"), "results"),
    ("POST", re.compile(PREFIX + r"/(?P<id>[^/]+)/cancel"), "cancel"),
]
_PROCESSING = {"cancelling": "canceling", "validating": "in_progress", "finalizing": "in_progress"}
_ENDED = ("completed", "failed", "expired", "cancelled")
_TYPES = {400: "invalid_request_error", 404: "not_found_error", 409: "invalid_request_error"}


_Route = Callable[[web.BaseRequest, str | None], Awaitable[web.Response]]


class MessageBatches:
    """The Message Batches of one simulated account, over a batch service of their own."""

    def __init__(self, service: BatchService, root: Callable[[], str]) -> None:
        self.service = service
        self.root = root  # the server's URL, for each batch's results_url

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        for method, pattern, name in _ROUTES:
            found = pattern.fullmatch(request.path)
            if found and request.method == method:
                route: _Route = getattr(self, "_" + name)
                try:
                    return await route(request, found.groupdict().get("id"))
                except ApiError as exc:
                    kind = _TYPES.get(exc.status, "api_error")
                    error = {"type": "error", "error": {"type": kind, "message": exc.message}}
                    return _json(error, exc.status)
        error = {"type": "not_found_error", "message": f"Not found: {request.path}"}
        return _json({"type": "error", "error": error}, 404)

    async def _create(self, request: web.BaseRequest, _: str | None) -> web.Response:
        raw = await request.read()
        if len(raw) > MAX_BYTES:
            raise ApiError(413, f"A batch is at most {MAX_BYTES} bytes.")
        try:
            data = json.loads(raw)
        except ValueError:
            raise ApiError(400, "The request body is not valid JSON.") from None
        requests = data.get("requests") if isinstance(data, dict) else None
        if not isinstance(requests, list) or not requests:
            raise ApiError(400, "requests: Field required (a non-empty list)")
        if len(requests) > MAX_REQUESTS:
            raise ApiError(400, f"requests: at most {MAX_REQUESTS:,} requests in a batch")
        lines, seen = [], set()
        for number, item in enumerate(requests):
            custom = item.get("custom_id") if isinstance(item, dict) else None
            params = item.get("params") if isinstance(item, dict) else None
            if not isinstance(custom, str) or not _CUSTOM_ID.fullmatch(custom):
                raise ApiError(
                    400, f"requests.{number}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$"
                )
            if custom in seen:
                raise ApiError(400, f"requests.{number}.custom_id: {custom!r} is not unique")
            if not isinstance(params, dict) or params.get("stream") is True:
                raise ApiError(400, f"requests.{number}.params: an object, without stream")
            seen.add(custom)
            line = {"custom_id": custom, "method": "POST", "url": _URL, "body": params}
            lines.append(json.dumps(line, separators=(",", ":")).encode())
        stored = self.service._store("message_batch.jsonl", "batch", b"\n".join(lines) + b"\n")
        body = {"input_file_id": stored.id, "endpoint": _URL, "completion_window": "24h"}
        view = self.service.create(body)
        return _json(self._view(view["id"]))

    async def _retrieve(self, request: web.BaseRequest, batch_id: str | None) -> web.Response:
        return _json(self._view(self._own(batch_id)))

    async def _cancel(self, request: web.BaseRequest, batch_id: str | None) -> web.Response:
        own = self._own(batch_id)
        self.service.retrieve(own)
        if self.service.batches[own].status not in _ENDED:
            self.service.cancel(own)
        return _json(self._view(own))

    async def _list(self, request: web.BaseRequest, _: str | None) -> web.Response:
        limit = int(request.query.get("limit", "20"))
        ids = list(reversed(self.service.batches))[:limit]
        data = [self._view(i) for i in ids]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        page = {"data": data, "has_more": len(self.service.batches) > limit}
        return _json({**page, "first_id": first, "last_id": last})

    async def _results(self, request: web.BaseRequest, batch_id: str | None) -> web.Response:
        own = self._own(batch_id)
        self.service.retrieve(own)
        batch = self.service.batches[own]
        if batch.status not in _ENDED:
            raise ApiError(400, f"Batch {batch_id} has not ended: its results are not ready.")
        lines = [json.dumps(_result(r), separators=(",", ":")).encode() for r in batch.done]
        return web.Response(
            body=b"\n".join(lines) + b"\n", headers={"Content-Type": "application/binary"}
        )

    def _own(self, batch_id: str | None) -> str:
        own = "batch_" + str(batch_id).removeprefix("msgbatch_")
        if own not in self.service.batches:
            raise ApiError(404, f"No batch found with id '{batch_id}'.")
        return own

    def _view(self, own: str) -> Json:
        """The MessageBatch object, brought up to date."""
        openai = self.service.retrieve(own)
        batch = self.service.batches[own]
        kinds = [_result(r)["result"]["type"] for r in batch.done]
        ended = batch.status in _ENDED
        public = "msgbatch_" + own.removeprefix("batch_")
        return {
            "id": public,
            "type": "message_batch",
            "processing_status": "ended" if ended else _PROCESSING.get(batch.status, "in_progress"),
            "request_counts": {
                "processing": len(batch.lines) - len(batch.done),
                "succeeded": kinds.count("succeeded"),
                "errored": kinds.count("errored"),
                "canceled": kinds.count("canceled"),
                "expired": kinds.count("expired"),
            },
            "ended_at": _time(batch.ended) if ended else None,
            "created_at": _time(openai["created_at"]),
            "expires_at": _time(openai["expires_at"]),
            "archived_at": None,
            "cancel_initiated_at": _time(batch.cancel_at),
            "results_url": f"{self.root()}{PREFIX}/{public}/results" if ended else None,
        }


def _result(record: Json) -> Json:
    """An OpenAI-shaped batch record as Anthropic's result line."""
    response = record.get("response")
    result: dict[str, Any]
    if response is None:
        code = (record.get("error") or {}).get("code")
        result = {"type": "canceled" if code == "batch_cancelled" else "expired"}
    elif 200 <= int(response["status_code"]) < 300:
        result = {"type": "succeeded", "message": response["body"]}
    else:
        result = {"type": "errored", "error": response["body"]}
    return {"custom_id": record["custom_id"], "result": result}


def _time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=bodies.dumps(data), headers={"Content-Type": JSON})


__all__ = ["MAX_BYTES", "MAX_REQUESTS", "PREFIX", "MessageBatches"]
