"""The limiter's guess at a request's tokens, read from its body before it is sent."""

from __future__ import annotations

from typing import Protocol

from fanwise.limits._core import estimate_tokens


class Readable(Protocol):
    """What the estimate reads of a request (``fanwise.Request`` reads it from the body)."""

    @property
    def prompt(self) -> str: ...

    @property
    def instructions(self) -> str | None: ...

    @property
    def max_output_tokens(self) -> int | None: ...


def request_tokens(request: Readable) -> int:
    """The input's text at 4 characters a token, plus the output cap (``max_*_tokens``)."""
    text = request.prompt
    system = request.instructions
    if system:
        text = system + text
    return estimate_tokens(text) + (request.max_output_tokens or 0)


__all__ = ["Readable", "request_tokens"]
