"""The Files and Batches APIs, on an accelerated clock: a "24h" batch completes in seconds.

A batch's life, in simulated seconds after its creation (``BatchTiming.speed`` of them pass in
each real second)::

    validating    for ``validate``; then a bad input file fails the batch (``errors`` says
                  where), and so does one that would take the tokens waiting in unfinished
                  batches past ``queue_tokens`` (``token_limit_exceeded``, as OpenAI's
                  enqueued-token limit does)
    in_progress   the lines run one after another, evenly spread over ``duration``; with
                  ``stall_at`` the batch stops after that share of its lines and stays here
                  until it is cancelled or expires; with ``expire_rate`` that share of the
                  lines is never run and comes back ``batch_expired``
    finalizing    for ``finalize``, then ``completed`` with its output and error files
    expired       when the 24 h window closes first: the lines run so far are in the output
                  file, the others in the error file as ``batch_expired``
    cancelling    after a cancel, for ``finalize``, then ``cancelled`` (unrun lines:
                  ``batch_cancelled``)

Each line runs through the simulator's own brain (its answers, random faults and script rules,
so a test injects a per-line failure with ``sim.script("poison", ["400"])``), but not through
the live ``rpm``/``tpm`` buckets: the Batch API has its own queue. Nothing runs in the background:
a batch is brought up to date whenever it is looked at, so a fake clock steers it exactly.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fanwise.simulator.config import BatchTiming
from fanwise.simulator.reply import Reply
from fanwise.simulator.request import Api

Json = dict[str, Any]
RunLine = Callable[[Api, bytes], Reply]
"""Runs one request line: the API (``"responses"`` or ``"chat"``) and the body, to a reply."""

WINDOW = 24 * 3600.0
"""The only completion window the API accepts, ``"24h"``, in seconds."""
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
ENDPOINTS: dict[str, Api] = {
    "/v1/responses": "responses",
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/v1/completions": "completions",
}
_FINAL = ("completed", "failed", "expired", "cancelled")
_STAMPS = (
    *("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at"),
    *("cancelling_at", "cancelled_at"),
)


class ApiError(Exception):
    """A request the real API would refuse; the HTTP layer sends OpenAI's error envelope."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def to_dict(self) -> Json:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": None,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass(slots=True)
class _Line:
    custom_id: str
    body: bytes


@dataclass(slots=True)
class _Batch:
    """One batch's state; times are simulated Unix seconds."""

    id: str
    input_file_id: str
    endpoint: str
    metadata: Mapping[str, str] | None
    created: float
    lines: list[_Line]
    errors: list[Json]
    done: list[Json] = field(default_factory=list)  # result lines, in input order
    status: str = "validating"
    cancel_at: float | None = None
    ended: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None

    def at(self, phase: str, timing: BatchTiming) -> float:
        start = self.created + timing.validate
        return {
            "in_progress": start,
            "finalizing": start + timing.duration,
            "completed": start + timing.duration + timing.finalize,
            "expires": self.created + WINDOW,
        }[phase]


class BatchService:
    """The files and batches of one simulated account."""

    def __init__(
        self,
        run_line: RunLine,
        timing: BatchTiming | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.run_line = run_line
        self.timing = timing or BatchTiming()
        self.clock = clock
        self._start = clock()
        self._epoch = wall()
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, _Batch] = {}
        self._ids = itertools.count(1)

    def now(self) -> float:
        """Simulated Unix time: the wall clock at start, then ``speed`` times faster."""
        return self._epoch + (self.clock() - self._start) * self.timing.speed

    def _new_id(self, prefix: str) -> str:
        number = next(self._ids)
        return f"{prefix}_{hashlib.sha256(f'{prefix}{number}'.encode()).hexdigest()[:24]}"

    # files

    def upload(self, filename: str, purpose: str, data: bytes) -> Json:
        if purpose != "batch":
            raise ApiError(400, f"purpose must be 'batch' here, got {purpose!r}", param="purpose")
        if len(data) > MAX_BYTES:
            raise ApiError(400, f"File is too large: {len(data)} bytes, at most {MAX_BYTES}.")
        return self._store(filename, purpose, data).to_dict()

    def _store(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        stored = StoredFile(self._new_id("file"), filename, purpose, data, int(self.now()))
        self.files[stored.id] = stored
        return stored

    def file(self, file_id: str) -> StoredFile:
        try:
            return self.files[file_id]
        except KeyError:
            raise ApiError(404, f"No such File object: {file_id}", param="id") from None

    def delete_file(self, file_id: str) -> Json:
        self.file(file_id)
        del self.files[file_id]
        return {"id": file_id, "object": "file", "deleted": True}

    def list_files(self) -> Json:
        return _page([f.to_dict() for f in reversed(self.files.values())], has_more=False)

    # batches

    def create(self, body: Mapping[str, Any]) -> Json:
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            known = ", ".join(ENDPOINTS)
            raise ApiError(
                400, f"endpoint must be one of {known}, got {endpoint!r}", param="endpoint"
            )
        if body.get("completion_window") != "24h":
            raise ApiError(400, "completion_window must be '24h'", param="completion_window")
        source = self.file(str(body.get("input_file_id")))
        lines, errors = _validate(source.data, str(endpoint))
        if not errors:
            errors = self._over_queue(lines)
        batch = _Batch(
            self._new_id("batch"),
            source.id,
            str(endpoint),
            body.get("metadata"),
            self.now(),
            lines,
            errors,
        )
        self.batches[batch.id] = batch
        return self._view(batch)

    def _over_queue(self, lines: list[_Line]) -> list[Json]:
        """The error that fails a batch past the enqueued-token limit, as OpenAI words it."""
        limit = self.timing.queue_tokens
        if limit is None:
            return []
        for batch in self.batches.values():
            self._advance(batch)
        queued = sum(
            _tokens(b.lines)
            for b in self.batches.values()
            if b.status not in _FINAL and not b.errors
        )
        wanted = _tokens(lines)
        if queued + wanted <= limit:
            return []
        message = (
            f"Enqueued token limit reached in organization org-fanwise-simulator. Limit: "
            f"{limit:,} enqueued tokens, {queued:,} in use, {wanted:,} requested. Please try "
            "again once some in_progress batches have been completed."
        )
        return [{"code": "token_limit_exceeded", "line": None, "message": message, "param": None}]

    def retrieve(self, batch_id: str) -> Json:
        batch = self._batch(batch_id)
        self._advance(batch)
        return self._view(batch)

    def cancel(self, batch_id: str) -> Json:
        batch = self._batch(batch_id)
        self._advance(batch)
        if batch.status in _FINAL:
            raise ApiError(409, f"Cannot cancel a batch with status {batch.status!r}.")
        if batch.cancel_at is None:
            batch.cancel_at = self.now()
            batch.status = "cancelling"
        return self._view(batch)

    def list(self, limit: int = 20, after: str | None = None) -> Json:
        ordered = list(reversed(self.batches.values()))
        if after is not None:
            ids = [b.id for b in ordered]
            ordered = ordered[ids.index(after) + 1 :] if after in ids else []
        page = ordered[:limit]
        for batch in page:
            self._advance(batch)
        return _page([self._view(b) for b in page], has_more=len(ordered) > limit)

    def _batch(self, batch_id: str) -> _Batch:
        try:
            return self.batches[batch_id]
        except KeyError:
            raise ApiError(404, f"No batch found with id '{batch_id}'.", param="id") from None

    def _advance(self, batch: _Batch) -> None:
        """Run the lines due by now and move the status on."""
        if batch.status in _FINAL:
            return
        now, timing = self.now(), self.timing
        if batch.errors:
            if now >= batch.at("in_progress", timing):
                batch.status, batch.ended = "failed", batch.at("in_progress", timing)
            return
        stop = min(now, batch.at("expires", timing), batch.cancel_at or math.inf)
        start, total = batch.at("in_progress", timing), len(batch.lines)
        step = timing.duration / total if total else 0.0
        runs = total if timing.stall_at is None else int(total * timing.stall_at)
        while len(batch.done) < runs and start + (len(batch.done) + 1) * step <= stop:
            batch.done.append(self._run(batch, batch.lines[len(batch.done)]))
        if batch.cancel_at is not None:
            if now >= batch.cancel_at + timing.finalize:
                self._close(batch, "cancelled", batch.cancel_at + timing.finalize)
        elif now >= batch.at("expires", timing) and len(batch.done) < total:
            self._close(batch, "expired", batch.at("expires", timing))
        elif runs < total:
            batch.status = "in_progress" if now >= start else batch.status  # stalled
        elif now >= batch.at("completed", timing):
            self._close(batch, "completed", batch.at("completed", timing))
        elif now >= batch.at("finalizing", timing):
            batch.status = "finalizing"
        elif now >= start:
            batch.status = "in_progress"

    def _run(self, batch: _Batch, line: _Line) -> Json:
        rate = self.timing.expire_rate
        if rate and int(_digest("expire", line.custom_id)[:8], 16) < rate * 0x100000000:
            return _unrun(batch, line, "expired")
        reply = self.run_line(ENDPOINTS[batch.endpoint], line.body)
        status, body = reply.status, _json_or_none(reply.body)
        if reply.action != "answer" or body is None:
            status, body = 500, _error_body("The server had an error processing your request.")
        rid = reply.headers.get("x-request-id") or f"req_{_digest(batch.id, line.custom_id)}"
        return {
            "id": f"batch_req_{_digest(batch.id, line.custom_id)}",
            "custom_id": line.custom_id,
            "response": {"status_code": status, "request_id": rid, "body": body},
            "error": None,
        }

    def _close(self, batch: _Batch, status: str, when: float) -> None:
        """End the batch: unrun lines become errors, and the two result files are written."""
        for line in batch.lines[len(batch.done) :]:
            batch.done.append(_unrun(batch, line, status))
        good = [r for r in batch.done if _ok(r)]
        bad = [r for r in batch.done if not _ok(r)]
        if good:
            batch.output_file_id = self._store(
                f"{batch.id}_output.jsonl", "batch_output", _jsonl(good)
            ).id
        if bad:
            batch.error_file_id = self._store(
                f"{batch.id}_error.jsonl", "batch_output", _jsonl(bad)
            ).id
        batch.status, batch.ended = status, when

    def _view(self, batch: _Batch) -> Json:
        """The Batch object as the API returns it."""
        timing = self.timing
        stamps: dict[str, int | None] = dict.fromkeys(_STAMPS, None)
        status = batch.status
        if status not in ("validating", "failed"):
            stamps["in_progress_at"] = int(batch.at("in_progress", timing))
        if status in ("finalizing", "completed"):
            stamps["finalizing_at"] = int(batch.at("finalizing", timing))
        if batch.cancel_at is not None:
            stamps["cancelling_at"] = int(batch.cancel_at)
        if batch.ended is not None:
            stamps[f"{status}_at"] = int(batch.ended)
        ran = [r for r in batch.done if r["response"] is not None]
        failed = sum(not _ok(r) for r in batch.done)
        errors = None
        if batch.errors and status == "failed":
            errors = {"object": "list", "data": batch.errors}
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "model": _model(batch),
            "errors": errors,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(batch.created),
            "expires_at": int(batch.at("expires", timing)),
            **stamps,
            "request_counts": {
                "total": len(batch.lines),
                "completed": sum(_ok(r) for r in batch.done),
                "failed": failed,
            },
            "usage": _usage(ran),
            "metadata": batch.metadata,
        }


_UNRUN = {
    "expired": (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
    "cancelled": (
        "batch_cancelled",
        "This request was not executed because the batch was cancelled.",
    ),
}


def _unrun(batch: _Batch, line: _Line, status: str) -> Json:
    """The result line of a request the batch never ran."""
    code, message = _UNRUN.get(status, ("", ""))
    return {
        "id": f"batch_req_{_digest(batch.id, line.custom_id)}",
        "custom_id": line.custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def _validate(data: bytes, endpoint: str) -> tuple[list[_Line], list[Json]]:
    """The lines of an input file, and its errors as the API lists them (line numbers from 1)."""
    lines: list[_Line] = []
    errors: list[Json] = []
    seen: set[str] = set()

    def bad(number: int, code: str, message: str, param: str | None = None) -> None:
        errors.append({"code": code, "line": number, "message": message, "param": param})

    text = data.decode("utf-8", errors="replace").splitlines()
    for number, raw in enumerate(text, 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            bad(number, "invalid_json_line", "This line is not parseable as valid JSON.")
            continue
        if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str):
            bad(number, "missing_required_parameter", "custom_id is missing.", "custom_id")
            continue
        if item.get("method") != "POST":
            bad(number, "invalid_method", "method must be POST.", "method")
        elif item.get("url") != endpoint:
            bad(number, "mismatched_endpoint", f"url must be {endpoint}, as the batch's.", "url")
        elif not isinstance(item.get("body"), dict) or item["body"].get("stream") is True:
            bad(number, "invalid_body", "body must be an object, without stream.", "body")
        elif item["custom_id"] in seen:
            bad(number, "duplicate_custom_id", "custom_id must be unique in the file.", "custom_id")
        else:
            seen.add(item["custom_id"])
            lines.append(_Line(item["custom_id"], json.dumps(item["body"]).encode()))
    if not lines and not errors:
        bad(1, "empty_file", "The input file has no requests.")
    if len(lines) > MAX_REQUESTS:
        bad(
            MAX_REQUESTS + 1, "too_many_requests", f"A batch holds at most {MAX_REQUESTS} requests."
        )
    return lines, errors


def _tokens(lines: list[_Line]) -> int:
    """Enqueued tokens, as the simulator counts them: about four bytes of body a token."""
    return sum(len(line.body) // 4 + 1 for line in lines)


def _ok(record: Json) -> bool:
    response = record.get("response")
    return response is not None and 200 <= int(response["status_code"]) < 300


def _usage(records: list[Json]) -> Json:
    totals = dict.fromkeys(("input", "output", "cached", "reasoning"), 0)
    for record in records:
        usage = (record["response"]["body"] or {}).get("usage") or {}
        inputs = usage.get("input_tokens", usage.get("prompt_tokens", 0)) or 0
        outputs = usage.get("output_tokens", usage.get("completion_tokens", 0)) or 0
        in_details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details") or {}
        out_details = (
            usage.get("output_tokens_details") or usage.get("completion_tokens_details") or {}
        )
        totals["input"] += int(inputs)
        totals["output"] += int(outputs)
        totals["cached"] += int(in_details.get("cached_tokens", 0) or 0)
        totals["reasoning"] += int(out_details.get("reasoning_tokens", 0) or 0)
    return {
        "input_tokens": totals["input"],
        "input_tokens_details": {"cached_tokens": totals["cached"]},
        "output_tokens": totals["output"],
        "output_tokens_details": {"reasoning_tokens": totals["reasoning"]},
        "total_tokens": totals["input"] + totals["output"],
    }


def _model(batch: _Batch) -> str | None:
    if not batch.lines:
        return None
    body = json.loads(batch.lines[0].body)
    return str(body.get("model")) if body.get("model") else None


def _page(data: list[Json], *, has_more: bool) -> Json:
    first = data[0]["id"] if data else None
    last = data[-1]["id"] if data else None
    return {
        "object": "list",
        "data": data,
        "first_id": first,
        "last_id": last,
        "has_more": has_more,
    }


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _error_body(message: str) -> Json:
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def _jsonl(records: list[Json]) -> bytes:
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)


__all__ = [
    "ENDPOINTS",
    "MAX_BYTES",
    "MAX_REQUESTS",
    "WINDOW",
    "ApiError",
    "BatchService",
    "StoredFile",
]
