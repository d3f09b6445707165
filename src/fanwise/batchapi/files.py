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

from fanwise.models.base import Request
from fanwise.models.compat import chat_body, responses_body

Api = Literal["responses", "chat"]
URLS: dict[Api, str] = {"responses": "/v1/responses", "chat": "/v1/chat/completions"}


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
    """One input file's worth of requests: the calls it carries and its bytes."""

    calls: tuple[tuple[int, str], ...]  # (index, key) of each line, in order
    data: bytes = field(repr=False)


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


def request_line(index: int, key: str, request: Request, api: Api) -> bytes:
    """One JSONL line (with its newline) asking for ``request``."""
    body = responses_body(request) if api == "responses" else chat_body(request)
    line = {"custom_id": custom_id(index, key), "method": "POST", "url": URLS[api], "body": body}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def pack(
    lines: Iterable[tuple[int, str, bytes]], limits: BatchLimits
) -> Iterator[Chunk | Oversized]:
    """Lines ``(index, key, line)`` packed, in order, into chunks within ``limits``.

    A line that alone exceeds ``max_bytes`` is yielded as ``Oversized``, and the packing goes on
    without it.
    """
    calls: list[tuple[int, str]] = []
    parts: list[bytes] = []
    size = 0
    for index, key, line in lines:
        if len(line) > limits.max_bytes:
            yield Oversized(index, len(line), limits.max_bytes)
            continue
        if calls and (len(calls) >= limits.max_requests or size + len(line) > limits.max_bytes):
            yield Chunk(tuple(calls), b"".join(parts))
            calls, parts, size = [], [], 0
        calls.append((index, key))
        parts.append(line)
        size += len(line)
    if calls:
        yield Chunk(tuple(calls), b"".join(parts))


__all__ = [
    "URLS",
    "Api",
    "BatchLimits",
    "Chunk",
    "Oversized",
    "custom_id",
    "pack",
    "parse_custom_id",
    "request_line",
]
