"""The exact text of a member of a JSON line, found without re-serialising anything.

A batch result line holds the server's response body inside it. ``json.loads`` then
``json.dumps`` gives the same value but not the same bytes (separators, escapes, number forms),
so the body is cut out of the line instead: the decoder walks the line's objects member by
member and gives back where the wanted value starts and ends.
"""

from __future__ import annotations

import json

_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"

LINE_ID = "fanwise-batch-line-id"
"""The header a batch result's completion or error carries the provider's own line id under
(OpenAI's ``batch_req_...``, Anthropic's ``custom_id``, Gemini's ``key``): the output line's
``id``. Headers are not journaled, so the id lives for the run that collected the batch."""


def member_text(text: str, *path: str | int) -> str | None:
    """The text of the value at ``path`` (keys of nested objects, indexes of arrays) in the
    JSON ``text``."""
    start, end = 0, len(text)
    for key in path:
        found = _item(text, start, key) if isinstance(key, int) else _member(text, start, key)
        if found is None:
            return None
        start, end = found
    return text[start:end]


def items_text(text: str) -> list[str]:
    """The text of each item of the JSON array ``text``."""
    out: list[str] = []
    at = _skip(text, 0)
    if text[at : at + 1] != "[":
        return out
    at = _skip(text, at + 1)
    while at < len(text) and text[at] != "]":
        _, end = _DECODER.raw_decode(text, at)
        out.append(text[at:end])
        at = _skip(text, end)
        if text[at : at + 1] == ",":
            at = _skip(text, at + 1)
    return out


def _item(text: str, at: int, index: int) -> tuple[int, int] | None:
    at = _skip(text, at)
    if text[at : at + 1] != "[":
        return None
    at, n = _skip(text, at + 1), 0
    while at < len(text) and text[at] != "]":
        _, end = _DECODER.raw_decode(text, at)
        if n == index:
            return at, end
        n += 1
        at = _skip(text, end)
        if text[at : at + 1] == ",":
            at = _skip(text, at + 1)
    return None


def _member(text: str, at: int, wanted: str) -> tuple[int, int] | None:
    """Where the value of ``wanted`` in the object starting at ``at`` (after blanks) lies."""
    at = _skip(text, at)
    if text[at : at + 1] != "{":
        return None
    at = _skip(text, at + 1)
    while at < len(text) and text[at] != "}":
        key, at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        if text[at : at + 1] != ":":
            return None
        start = _skip(text, at + 1)
        _, end = _DECODER.raw_decode(text, start)
        if key == wanted:
            return start, end
        at = _skip(text, end)
        if text[at : at + 1] == ",":
            at = _skip(text, at + 1)
    return None


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _SPACE:
        at += 1
    return at


__all__ = ["LINE_ID", "items_text", "member_text"]
