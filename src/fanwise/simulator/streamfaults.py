"""Two faults only a stream can have, each a 200 that looks fine on the wire.

- ``cut``: the stream ends cleanly, halfway through the answer, without its proper end: no
  Chat chunk with a ``finish_reason`` (but a ``data: [DONE]``, as llama.cpp's server sends when
  it drops a request), no ``response.completed``, no ``message_stop``. Asked for a whole body,
  ``cut`` sends the body cut off mid-JSON, as ``garbage`` does.
- ``split``: the answer ends with an emoji (``SPLIT``), and the stream cuts its delta between the
  character's two UTF-16 halves, as a server that counts in UTF-16 units does: one event ends
  with ``"\\ud83c"``, the next starts with ``"\\udf5c"``. Asked for a whole body, the answer is
  whole.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from fanwise.simulator.answer import Answer

STREAM_FAULTS = ("cut", "split")
SPLIT = " \U0001f35c end"
"""What the ``split`` fault adds to a text answer: a character outside the BMP, then a word."""

Json = dict[str, Any]


def with_character(answer: Answer) -> Answer:
    """``answer`` ending with ``SPLIT`` (a tool call or a refusal stays as it is)."""
    if not answer.text or answer.tool or answer.refusal is not None:
        return answer
    return dataclasses.replace(answer, text=answer.text + SPLIT)


def stream_fault(events: list[Json], api: str, fault: str) -> list[Json]:
    """The stream's events as ``fault`` serves them (``api``: ``responses`` or ``chat``)."""
    if fault == "cut":
        return cut(events, api)
    if fault == "split":
        return split(events, api)
    return events


def cut(events: list[Json], api: str) -> list[Json]:
    """The events up to half of the text deltas: no finishing event after them."""
    deltas = [n for n, event in enumerate(events) if _text(event, api) is not None]
    if not deltas:  # no text (a tool call, a refusal): the stream stops after its first event
        return events[:2] if api == "responses" else events[:1]
    keep = deltas[max(0, len(deltas) // 2 - 1)]
    return events[: keep + 1]


def split(events: list[Json], api: str) -> list[Json]:
    """Each delta that holds a character outside the BMP sent as two, cut between its halves."""
    out: list[Json] = []
    for event in events:
        text = _text(event, api)
        at = next((n for n, c in enumerate(text or "") if ord(c) > 0xFFFF), None)
        if text is None or at is None:
            out.append(event)
            continue
        high, low = _halves(text[at])
        out.append(_with_text(event, api, text[:at] + high))
        out.append(_with_text(event, api, low + text[at + 1 :]))
    if api == "responses":
        for number, event in enumerate(out):
            event["sequence_number"] = number
    return out


def _halves(char: str) -> tuple[str, str]:
    """A character outside the BMP as its two UTF-16 surrogates, each a one-character str."""
    code = ord(char) - 0x10000
    return chr(0xD800 + (code >> 10)), chr(0xDC00 + (code & 0x3FF))


def _text(event: Json, api: str) -> str | None:
    """The text delta an event carries, or None."""
    if api == "responses":
        delta = event.get("delta")
        ok = event.get("type") == "response.output_text.delta" and isinstance(delta, str)
        return delta if ok else None
    choices = event.get("choices") or []
    content = (choices[0].get("delta") or {}).get("content") if choices else None
    return content if isinstance(content, str) and content else None


def _with_text(event: Json, api: str, text: str) -> Json:
    copied = copy.deepcopy(event)
    if api == "responses":
        copied["delta"] = text
    else:
        copied["choices"][0]["delta"]["content"] = text
    return copied


__all__ = ["SPLIT", "STREAM_FAULTS", "cut", "split", "stream_fault", "with_character"]
