"""OpenAI and every OpenAI-compatible endpoint over one shared aiohttp session: the lean transport.

Why it exists (docs/benchmarks.md): against the simulator on this 2-core machine, the official
SDK spends 2.2 to 4.3 ms of CPU per call, two thirds of it in httpx2's connection pool, which
scans every connection for every request and so slows as concurrency grows (about 240 calls/s
at concurrency 1,000), while a bare aiohttp post and ``json.loads`` spends 0.23 to 0.37 ms.
This model sends each request's own body to its own endpoint, as ``OpenAIModel`` does, keeps
the response body as the bytes that came, and reads what fanwise needs with ``models.bodies``:
1.1 times the bare floor's CPU per call.

Errors keep the SDK path's semantics: an HTTP status goes through the same ``status_error``,
a dropped or refused connection is ``network``, a 2xx that cannot be read is
``invalid_response``, a failure reported inside a stream is ``server``. ``--transport sdk``
keeps the official SDK one flag away.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp

from fanwise.models.base import Completion, DeltaSink, Endpoint, Model, Request
from fanwise.models.bodies import (
    ChatStream,
    ResponsesStream,
    error_from_body,
    lowered_headers,
    read_body,
)
from fanwise.models.compat import resolve_api_key, streamed_body
from fanwise.models.http_session import SharedSession, transport_errors
from fanwise.models.sse import SseLines

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class FastOpenAIModel(Model):
    """A model behind an OpenAI-compatible HTTP API, spoken to with aiohttp.

    One ``SharedSession`` carries every call; ``aclose()`` (or ``async with``) releases it.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        key = resolve_api_key(api_key, base_url, environ)
        self.base_url = (base_url or environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._urls = {endpoint: self.base_url + endpoint.path for endpoint in Endpoint}
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        for header, variable in (
            ("OpenAI-Organization", "OPENAI_ORG_ID"),
            ("OpenAI-Project", "OPENAI_PROJECT_ID"),
        ):
            if environ.get(variable):
                headers[header] = environ[variable]
        self._http = SharedSession(self.base_url, headers)

    @property
    def name(self) -> str:
        return "openai"

    async def aclose(self) -> None:
        """Release the connections; the next call opens a fresh session."""
        await self._http.aclose()

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        """Send ``request.body`` to its endpoint; stream it when ``on_delta`` is given."""
        with transport_errors():
            if on_delta is None or request.endpoint not in _STREAMED:
                return await self._call(request)
            return await self._stream(request, on_delta)

    async def _call(self, request: Request) -> Completion:
        async with self._post(request.endpoint, request.body) as response:
            raw = await response.read()
            headers = lowered_headers(response.headers)
            if response.status >= 300:
                raise error_from_body(response.status, raw, headers)
        return read_body(request.endpoint, raw, headers)

    async def _stream(self, request: Request, on_delta: DeltaSink) -> Completion:
        reader = (
            ResponsesStream(on_delta)
            if request.endpoint is Endpoint.RESPONSES
            else ChatStream(on_delta, request.model)
        )
        async with self._post(request.endpoint, streamed_body(request)) as response:
            headers = lowered_headers(response.headers)
            if response.status >= 300:
                raise error_from_body(response.status, await response.read(), headers)
            if response.content_type == "application/json":
                # A compatible server that answers a stream request with a whole body.
                completion = read_body(request.endpoint, await response.read(), headers)
                on_delta(completion.text)
                return completion
            lines, done = SseLines(), False
            # Read to the end even after the last event, so the connection can be reused.
            async for chunk in response.content.iter_any():
                for data in lines.feed(chunk):
                    done = done or reader.take(data)
            for data in lines.close():
                done = done or reader.take(data)
        return reader.result(headers)

    def _post(
        self, endpoint: Endpoint, body: Mapping[str, Any]
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """The request, as an async context manager that releases the connection on exit."""
        return self._http.post(self._urls[endpoint], json.dumps(body).encode())


_STREAMED = frozenset({Endpoint.RESPONSES, Endpoint.CHAT})
"""The endpoints whose text can stream; any other answers whole, even when asked to stream."""


__all__ = ["FastOpenAIModel"]
