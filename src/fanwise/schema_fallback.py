"""A schema for a server that refuses the strict form: ``json_object`` with the schema beside it.

OpenAI-compatible servers differ in what ``response_format`` they take. llama-cpp-python's
server knows only ``text`` and ``json_object`` (with the schema in a ``schema`` field, which it
turns into a grammar) and answers ``json_schema`` with HTTP 500; others answer 400 naming the
parameter. When a Chat request that asks for ``json_schema`` is refused so, the run sends it
(and every later one) as ``json_object`` with that ``schema`` field, and the schema in the
prompt too for servers that take ``json_object`` alone. The answer is still checked against the
schema as before. Said at debug level, once a run.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from fanwise.models.base import Endpoint, Request
from fanwise.outcome import BadRequest

log = logging.getLogger("fanwise")

NAMES_FORMAT = re.compile(r"response_format|json_schema", re.IGNORECASE)
HINT = "Answer with only a JSON value that matches this JSON Schema:\n{schema}"


def refuses_schema(error: BaseException, request: Request) -> bool:
    """Whether ``error`` is the server refusing ``request``'s ``json_schema`` format: a
    bad request (4xx, or a 5xx naming an unsupported parameter) that names the format."""
    if not isinstance(error, BadRequest) or json_object_request(request) is None:
        return False
    return bool(NAMES_FORMAT.search(error.message))


def json_object_request(request: Request) -> Request | None:
    """``request`` asking for ``json_object`` with the schema, or None when it is not a Chat
    request asking for ``json_schema``."""
    if request.endpoint is not Endpoint.CHAT:
        return None
    fmt = request.body.get("response_format")
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return None
    inner = fmt.get("json_schema")
    schema = inner.get("schema") if isinstance(inner, Mapping) else None
    if not isinstance(schema, Mapping):
        return None
    body = dict(request.body)
    body["response_format"] = {"type": "json_object", "schema": schema}
    body["messages"] = _with_hint(body.get("messages"), HINT.format(schema=json.dumps(schema)))
    return Request(request.endpoint, body)


def _with_hint(messages: Any, hint: str) -> list[Any]:
    """The messages with ``hint`` after the last user turn's text (or as a turn of its own)."""
    turns = list(messages) if isinstance(messages, list) else []
    last = turns[-1] if turns else None
    if isinstance(last, Mapping) and last.get("role") == "user":
        content = last.get("content")
        if isinstance(content, str):
            turns[-1] = {**last, "content": f"{content}\n\n{hint}"}
            return turns
    return [*turns, {"role": "user", "content": hint}]


class SchemaForm:
    """What a run's server takes: ``json_schema`` until it refuses it once, then ``json_object``."""

    def __init__(self) -> None:
        self.json_object = False

    def sent(self, request: Request) -> Request:
        """The request as this server takes it."""
        if not self.json_object:
            return request
        return json_object_request(request) or request

    def fallback(self, error: BaseException, request: Request) -> Request | None:
        """The request again as ``json_object`` when ``error`` refused its ``json_schema``."""
        if not refuses_schema(error, request):
            return None
        if not self.json_object:
            self.json_object = True
            log.debug(
                "fanwise: the server refused response_format json_schema (%s); sending "
                "json_object with the schema for the rest of the run",
                error,
            )
        return json_object_request(request)


__all__ = ["SchemaForm", "json_object_request", "refuses_schema"]
