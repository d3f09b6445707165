"""Requests written as Batch API input lines, packed into files the API will take.

A file holds at most 50,000 requests and 200 MB (OpenAI's limits); ``BatchLimits`` carries them
as parameters so that tests can pack three requests a file. Each line's ``custom_id`` is
``INDEX:KEY``: the call's place in the run and its stable key, so a result line finds its call
again, even in another process after a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from fanwise.models.base import Endpoint, Request

Api = Literal["responses", "chat"]
URLS: dict[Api, str] = {"responses": "/v1/responses", "chat": "/v1/chat/completions"}
"""The batch URL of each ``--api`` choice (a prompt-style run's endpoint)."""


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How much one input file may hold: requests, and bytes."""

    max_requests: int = 50_000
    max_bytes: int = 200 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_requests < 1 or self.max_bytes < 1:
            raise ValueError(
                f"batch limits must be at least 1, got {self.max_requests} requests, "
                f"{self.max_bytes} bytes"
            )


@dataclass(frozen=True, slots=True)
class Chunk:
    """One input file's worth of requests to one endpoint: the calls it carries, its bytes."""

    calls: tuple[tuple[int, str], ...]  # (index, key) of each line, in order
    data: bytes = field(repr=False)
    url: str = "/v1/responses"  # the Batch API takes one endpoint per batch


@dataclass(frozen=True, slots=True)
class Oversized:
    """A request bigger, as a batch line, than a whole file may be: it cannot be sent."""

    index: int
    size: int
    limit: int

    @property
    def message(self) -> str:
        return (
            f"the request is {self.size:,} bytes as a batch line, more than a whole batch file "
            f"may hold ({self.limit:,})"
        )


def custom_id(index: int, key: str) -> str:
    return f"{index}:{key}"


def parse_custom_id(text: str) -> tuple[int, str] | None:
    """``(index, key)`` from a ``custom_id`` fanwise wrote; None for any other."""
    index, sep, key = str(text).partition(":")
    if not sep or not index.isdigit():
        return None
    return int(index), key


def request_line(index: int, key: str, request: Request, api: Api | None = None) -> bytes:
    """One JSONL line (with its newline) asking for ``request``: its own url and body."""
    line = {
        "custom_id": custom_id(index, key),
        "method": "POST",
        "url": request.endpoint.url_for(request.model)
        if request.endpoint.native
        else (request.endpoint.url),
        "body": request.body,
    }
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def endpoint_of(api: Api | Endpoint | str) -> Endpoint:
    """The endpoint an ``--api`` choice (or an endpoint) names."""
    return api if isinstance(api, Endpoint) else Endpoint.parse(api)


def pack(
    lines: Iterable[tuple[int, str, bytes]], limits: BatchLimits
) -> Iterator[Chunk | Oversized]:
    """Lines ``(index, key, line)`` packed, in order, into chunks within ``limits``, one
    endpoint a chunk (the Batch API requires it): lines to different urls never share a file.

    A line that alone exceeds ``max_bytes`` is yielded as ``Oversized``, and the packing goes on
    without it.
    """
    open_chunks: dict[str, tuple[list[tuple[int, str]], list[bytes], list[int]]] = {}
    for index, key, line in lines:
        if len(line) > limits.max_bytes:
            yield Oversized(index, len(line), limits.max_bytes)
            continue
        url = line_url(line)
        calls, parts, size = open_chunks.setdefault(url, ([], [], [0]))
        if calls and (len(calls) >= limits.max_requests or size[0] + len(line) > limits.max_bytes):
            yield Chunk(tuple(calls), b"".join(parts), url)
            calls.clear()
            parts.clear()
            size[0] = 0
        calls.append((index, key))
        parts.append(line)
        size[0] += len(line)
    for url, (calls, parts, _) in open_chunks.items():
        if calls:
            yield Chunk(tuple(calls), b"".join(parts), url)


def line_url(line: bytes) -> str:
    """The ``url`` of a line ``request_line`` wrote (it comes before the body, so it is found
    in the first bytes, whatever the body's size)."""
    start = line.find(b'"url":"')
    if start < 0:
        return URLS["responses"]
    start += len(b'"url":"')
    return line[start : line.index(b'"', start)].decode()


__all__ = [
    "URLS",
    "Api",
    "BatchLimits",
    "Chunk",
    "Oversized",
    "custom_id",
    "endpoint_of",
    "line_url",
    "pack",
    "parse_custom_id",
    "request_line",
]
