"""The simulator's HTTP face: aiohttp's low-level server in front of ``SimulatorCore``.

Chosen by measurement (figures in docs/simulator.md, 2-core machine, wrk as the client): a bare
asyncio.Protocol server answered 58k requests/s and a bare aiohttp handler 14k; the whole
simulator on aiohttp serves 6.4k/s (about 60 us of its 150 us a request is the simulator's own
work, which a hand-written server would not remove). The openai SDK, fanwise's real client,
tops out near 400 calls/s on the same machine, so aiohttp is not the bottleneck by 15x, and it
brings keep-alive, chunked streaming and correct HTTP/1.1 parsing for free.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Literal

from aiohttp import web
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader

from fanwise.simulator import anthropic as _anthropic
from fanwise.simulator import batch_http, bodies
from fanwise.simulator import gemini as _gemini
from fanwise.simulator import gemini_batches as _gemini_batches
from fanwise.simulator import gemini_caches as _gemini_caches
from fanwise.simulator import gemini_native as _gemini_native
from fanwise.simulator.anthropic_batches import PREFIX as MESSAGE_BATCHES
from fanwise.simulator.anthropic_batches import MessageBatches
from fanwise.simulator.batches import BatchService
from fanwise.simulator.config import ConfigError, ScriptRule, SimulatorConfig
from fanwise.simulator.core import SimulatorCore
from fanwise.simulator.gemini_batches import GeminiBatches
from fanwise.simulator.reply import JSON, Reply
from fanwise.simulator.request import Api, RequestError
from fanwise.simulator.stats import SimulatorStats

_APIS: dict[str, Api] = {
    "/v1/responses": "responses",
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/v1/completions": "completions",
    "/responses": "responses",
    "/chat/completions": "chat",
    "/embeddings": "embeddings",
    "/completions": "completions",
}
_MESSAGES = frozenset({"/v1/messages", "/messages"})
"""Anthropic's Messages API (``simulator/anthropic.py``)."""
_GEMINI_CHAT = _gemini.PREFIX + "/chat/completions"
"""Google's OpenAI-compatible endpoint (``simulator/gemini.py``)."""
_GEMINI_NATIVE = re.compile(
    r"/v1beta/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent|embedContent)"
)
"""Gemini's own API (``simulator/gemini_native.py``)."""
Face = Literal["openai", "anthropic", "gemini"]
_MAX_BODY = 64 * 1024 * 1024
_SHUTDOWN_GRACE = 0.2  # seconds open requests get at exit before they are cancelled


class Simulator:
    """An OpenAI-compatible server on 127.0.0.1 (a free port by default), run by ``async with``.

    ``base_url`` is what to hand an OpenAI client. ``stats()``, ``script()`` and ``reset()`` do
    in-process what ``/_stats``, ``/_control/script`` and ``/_control/reset`` do over HTTP.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.host = host
        self._requested_port = port
        self._core = SimulatorCore(self.config, clock=clock)
        self.batches = BatchService(self._run_line, self.config.batch, clock=clock)
        """The Files and Batches APIs' state (``/v1/files``, ``/v1/batches``)."""
        messages = BatchService(self._run_message_line, self.config.batch, clock=clock)
        self.message_batches = MessageBatches(messages, lambda: self.url)
        """Anthropic's Message Batches API (``/v1/messages/batches``)."""
        gemini = BatchService(self._run_gemini_line, self.config.batch, clock=clock)
        self.gemini_batches = GeminiBatches(gemini, lambda: self.url)
        """Gemini's Batch Mode and File API (``simulator/gemini_batches.py``)."""
        self.gemini_caches = _gemini_caches.CachedContents(clock)
        """Gemini's explicit context caches (``simulator/gemini_caches.py``)."""
        self._runner: web.ServerRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not running: use `async with Simulator() as sim`")
        return self._port

    @property
    def url(self) -> str:
        """The server's root, e.g. ``http://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root to give an OpenAI client: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    def stats(self) -> SimulatorStats:
        return self._core.stats()

    @property
    def received(self) -> list[tuple[Api, bytes]]:
        """The latest request bodies, each with the API it was sent to, oldest first."""
        return list(self._core.received)

    @property
    def sent(self) -> list[bytes]:
        """The bodies of the latest whole (not streamed) 200 answers, oldest first."""
        return list(self._core.sent)

    def script(
        self,
        match: str,
        faults: Sequence[str],
        *,
        retry_after: float | None = None,
        latency: float | None = None,
    ) -> ScriptRule:
        """The next requests whose prompt contains ``match`` get ``faults`` in turn ("ok": none)."""
        rule = ScriptRule(match, tuple(faults), retry_after, latency)
        self._core.script(rule)
        return rule

    def reset(self) -> None:
        """Clear scripts and statistics and refill the rate-limit buckets."""
        self._core.reset()

    async def start(self) -> Simulator:
        server = web.Server(
            self._handle,
            request_factory=self._make_request,
            handler_cancellation=True,  # a client that hangs up ends its `hang` or latency wait
            access_log=None,
        )
        runner = web.ServerRunner(server, shutdown_timeout=_SHUTDOWN_GRACE)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port, backlog=4096)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not running"
        return f"<Simulator {where} {self.config!r}>"

    def _make_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: Any,
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        loop = asyncio.get_running_loop()
        return web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=_MAX_BODY
        )

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        api = _APIS.get(request.path)
        if api is not None and request.method == "POST":
            return await self._call(request, api)
        if request.path.startswith(MESSAGE_BATCHES):
            return await self.message_batches.handle(request)
        if request.path in _MESSAGES and request.method == "POST":
            return await self._call(request, "chat", face="anthropic")
        if request.path == _GEMINI_CHAT and request.method == "POST":
            return await self._call(request, "chat", face="gemini")
        if request.path.startswith(_gemini_caches.PREFIX):
            return await self.gemini_caches.handle(request)
        native = _GEMINI_NATIVE.fullmatch(request.path)
        if native is not None and request.method == "POST":
            return await self._native(request, native.group("model"), native.group("method"))
        if _gemini_batches.handles(request.path):
            return await self.gemini_batches.handle(request)
        if request.path.startswith(batch_http.PREFIXES):
            return await batch_http.handle(self.batches, request)
        route = _CONTROL.get((request.method, request.path))
        if route is not None:
            return await route(self, request)
        message = f"Invalid URL ({request.method} {request.path})"
        return _json(404, bodies.error_body(404, message, code="unknown_url"))

    async def _call(
        self, request: web.BaseRequest, api: Api, *, face: Face = "openai"
    ) -> web.StreamResponse:
        """One API call, answered as ``face`` answers: OpenAI, Anthropic's Messages API, or
        Google's OpenAI-compatible endpoint."""
        recorder = self._core.recorder
        recorder.started(request.path)
        try:
            reply = await self._reply(request, api, face)
            if reply.action == "hang":
                await asyncio.Future()  # until the client hangs up or the server stops
            if reply.tail is None and reply.delay > 0:
                await asyncio.sleep(reply.delay)
            if reply.action == "drop":
                return await _drop(request)
            recorder.by_status[reply.status] += 1
            return await _send(request, reply)
        finally:
            recorder.finished()

    async def _reply(self, request: web.BaseRequest, api: Api, face: Face) -> Reply:
        body = await request.read()
        if face == "gemini":
            cached = self._gemini_cached(body, native=False)
            if isinstance(cached, Reply):
                return _gemini.translate(cached)
            inner, preset = cached
            reply = self._core.call(api, request.headers, inner, preset=preset, sent=body)
            return _gemini.translate(reply)
        if face == "openai":
            return self._core.call(api, request.headers, body)
        point = _anthropic.breakpoint(body)
        try:
            body = _anthropic.chat_body(body)
        except RequestError as exc:
            return _anthropic.invalid(exc, {})
        reply = self._core.call(api, request.headers, body, breakpoint=point, explicit=True)
        return _anthropic.translate(reply)

    async def _native(
        self, request: web.BaseRequest, model: str, method: str
    ) -> web.StreamResponse:
        """Gemini's own API: generateContent, streamGenerateContent, embedContent."""
        recorder = self._core.recorder
        recorder.started(request.path)
        try:
            reply = self._native_reply(model, method, request.headers, await request.read())
            if reply.action == "hang":
                await asyncio.Future()
            if reply.tail is None and reply.delay > 0:
                await asyncio.sleep(reply.delay)
            if reply.action == "drop":
                return await _drop(request)
            recorder.by_status[reply.status] += 1
            return await _send(request, reply)
        finally:
            recorder.finished()

    def _native_reply(
        self, model: str, method: str, headers: Any, body: bytes, *, limited: bool = True
    ) -> Reply:
        preset: int | None = None
        try:
            if method == "embedContent":
                api: Api = "embeddings"
                inner = _gemini_native.embeddings_body(body, model)
            else:
                api = "chat"
                stream = method == "streamGenerateContent"
                cached = self._gemini_cached(body, native=True)
                if isinstance(cached, Reply):
                    return _gemini_native.translate(cached, model)
                with_cache, preset = cached
                inner = _gemini_native.chat_body(with_cache, model, stream=stream)
        except RequestError as exc:
            error = {"code": 400, "message": exc.message, "status": "INVALID_ARGUMENT"}
            return Reply(status=400, body=bodies.dumps({"error": error}))
        reply = self._core.call(api, headers, inner, limited=limited, preset=preset)
        return _gemini_native.translate(reply, model)

    def _gemini_cached(self, body: bytes, *, native: bool) -> tuple[bytes, int | None] | Reply:
        """A Gemini request that names a cache (``cachedContents``), as if the cache's text
        came first, with the tokens it read; the request as it is when it names none."""
        try:
            data = json.loads(body)
        except ValueError:
            return body, None
        name = _gemini_caches.cached_name(data) if isinstance(data, dict) else None
        if name is None:
            return body, None
        cache = self.gemini_caches.lookup(name)
        if cache is None:
            message = f"CachedContent not found (or expired): {name}"
            return self._core.error_reply(404, message, code="not_found")
        if native:
            data.pop("cachedContent", None)
            data["systemInstruction"] = {"parts": [{"text": cache.text}]}
        else:
            data.pop("extra_body", None)
            turns = [m for m in data.get("messages") or [] if m.get("role") != "system"]
            data["messages"] = [{"role": "system", "content": cache.text}, *turns]
        return bodies.dumps(data), cache.tokens

    def _run_gemini_line(self, api: Api, body: bytes) -> Reply:
        """One Batch Mode line: ``{"model", "request"}``, answered by the native face."""
        line = json.loads(body)
        request = bodies.dumps(line["request"])
        return self._native_reply(line["model"], "generateContent", {}, request, limited=False)

    def _run_line(self, api: Api, body: bytes) -> Reply:
        """One Batch API line, through the same brain as a live call but not its rate limits."""
        return self._core.call(api, {}, body, limited=False)

    def _run_message_line(self, api: Api, body: bytes) -> Reply:
        """One Message Batches line: a Messages body, answered in Anthropic's shapes."""
        try:
            chat = _anthropic.chat_body(body)
        except RequestError as exc:
            return _anthropic.invalid(exc, {})
        return _anthropic.translate(self._core.call("chat", {}, chat, limited=False))

    async def _models(self, request: web.BaseRequest) -> web.StreamResponse:
        reply = self._core.models()
        return web.Response(body=reply.body, headers={**reply.headers, "Content-Type": JSON})

    async def _stats(self, request: web.BaseRequest) -> web.StreamResponse:
        return _json(200, self.stats().to_dict())

    async def _get_script(self, request: web.BaseRequest) -> web.StreamResponse:
        return _json(200, {"script": [r.to_dict() for r in self._core.remaining_script()]})

    async def _post_script(self, request: web.BaseRequest) -> web.StreamResponse:
        """Append rules: a JSON list of ``{"match", "faults", "retry_after"?, "latency"?}``."""
        try:
            data = json.loads(await request.read())
            rules = [ScriptRule.from_dict(r) for r in (data if isinstance(data, list) else [data])]
        except (ValueError, ConfigError) as exc:
            return _json(400, bodies.error_body(400, f"bad script: {exc}", code="invalid_script"))
        for rule in rules:
            self._core.script(rule)
        return await self._get_script(request)

    async def _reset(self, request: web.BaseRequest) -> web.StreamResponse:
        self.reset()
        return _json(200, {"ok": True})


_Route = Callable[[Simulator, web.BaseRequest], Awaitable[web.StreamResponse]]
_CONTROL: dict[tuple[str, str], _Route] = {
    ("GET", "/v1/models"): Simulator._models,
    ("GET", "/models"): Simulator._models,
    ("GET", "/_stats"): Simulator._stats,
    ("GET", "/_control/script"): Simulator._get_script,
    ("POST", "/_control/script"): Simulator._post_script,
    ("POST", "/_control/reset"): Simulator._reset,
}


async def _send(request: web.BaseRequest, reply: Reply) -> web.StreamResponse:
    headers = {**reply.headers, "Content-Type": reply.content_type}
    if reply.tail is None:
        return web.Response(status=reply.status, body=reply.body, headers=headers)
    response = web.StreamResponse(status=reply.status, headers=headers)
    await response.prepare(request)
    await response.write(reply.body)
    if reply.delay > 0:
        await asyncio.sleep(reply.delay)
    await response.write(reply.tail)
    await response.write_eof()
    return response


async def _drop(request: web.BaseRequest) -> web.StreamResponse:
    """Close the connection without a word; the handler ends when aiohttp notices."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    await asyncio.Future()  # cancelled by handler_cancellation once the connection is lost
    raise AssertionError("unreachable")  # pragma: no cover


def _json(status: int, data: object) -> web.Response:
    return web.Response(status=status, body=bodies.dumps(data), headers={"Content-Type": JSON})


__all__ = ["Simulator"]
