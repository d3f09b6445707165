"""OpenAI and every OpenAI-compatible endpoint over one shared aiohttp session: the lean transport.

Why it exists (docs/benchmarks.md): against the simulator on this 2-core machine, the official
SDK spends 2.4 to 4.4 ms of CPU per call (request building, pydantic models, httpx2's pool, which
also degrades as connections grow: 206 calls/s at concurrency 1,000), while a bare aiohttp post
and ``json.loads`` spends 0.34 to 0.43 ms. This model sends the same bodies as ``OpenAIModel``
(``models.compat``) and reads only the fields fanwise keeps: text, usage, model, id, headers.

Errors keep the SDK path's semantics: an HTTP status goes through the same ``status_error``,
a dropped or refused connection is ``network``, a 2xx that cannot be read is
``invalid_response``, a failure reported inside a stream is ``server``. ``--transport sdk``
keeps the official SDK one flag away.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from fanwise.models.base import Completion, DeltaSink, Request, Usage
from fanwise.models.compat import chat_body, responses_body, status_error
from fanwise.models.sse import SseLines
from fanwise.outcome import CallError, CallTimeout, InvalidResponse, NetworkError, ServerError
from fanwise.redact import redact

Api = Literal["responses", "chat"]
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class FastOpenAIModel:
    """A model behind an OpenAI-compatible HTTP API, spoken to with aiohttp.

    The session is made on the first call, inside the running event loop, and shared by every
    call after it; ``close()`` releases it. No client timeout: the engine bounds each attempt.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        api: Api = "responses",
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        if api not in ("responses", "chat"):
            raise ValueError(f"api must be 'responses' or 'chat', got {api!r}")
        key = api_key or environ.get("OPENAI_API_KEY")
        if not key:
            raise ValueError("an API key is needed: pass api_key or set OPENAI_API_KEY")
        self.api: Api = api
        base = (base_url or environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.url = f"{base}/responses" if api == "responses" else f"{base}/chat/completions"
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        for header, variable in (
            ("OpenAI-Organization", "OPENAI_ORG_ID"),
            ("OpenAI-Project", "OPENAI_PROJECT_ID"),
        ):
            if environ.get(variable):
                self._headers[header] = environ[variable]
        # The proxy from HTTPS_PROXY/NO_PROXY (as the SDK honours them), read once. aiohttp's
        # trust_env=True reads it and ~/.netrc in a thread on every request: 0.61 ms of CPU per
        # call instead of 0.27 ms (5,000 calls at concurrency 1,000, docs/benchmarks.md).
        self._proxy, self._proxy_auth = _env_proxy(self.url)
        self._http: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return "openai" if self.api == "responses" else "openai-chat"

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # limit=0: the engine's concurrency is the cap; aiohttp's default of 100 connections
            # would queue calls behind it at --concurrency 1000.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._http = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),  # the API sets none that matter
            )
        return self._http

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        body = responses_body(request) if self.api == "responses" else chat_body(request)
        try:
            if on_delta is None:
                return await self._call(body)
            body["stream"] = True
            if self.api == "chat":
                body["stream_options"] = {"include_usage": True}
            return await self._stream(body, request, on_delta)
        except CallError:
            raise
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidResponse(_message(exc)) from exc  # the SDK's words for it, too
        except TimeoutError as exc:  # aiohttp's own (connect) timeouts; the engine's are outside
            raise CallTimeout(_message(exc)) from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(_message(exc)) from exc

    async def _call(self, body: dict[str, Any]) -> Completion:
        payload = json.dumps(body).encode()
        async with self._session().post(
            self.url,
            data=payload,
            allow_redirects=False,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        ) as response:
            raw = await response.read()
            headers = _lowered(response.headers)
            if response.status >= 300:
                raise _status_error(response.status, raw, headers)
        data = json.loads(raw)
        if self.api == "chat":
            return _chat_completion(data, headers)
        return _responses_completion(data, headers)

    async def _stream(
        self, body: dict[str, Any], request: Request, on_delta: DeltaSink
    ) -> Completion:
        payload = json.dumps(body).encode()
        reader = (
            _ResponsesStream(on_delta)
            if self.api == "responses"
            else _ChatStream(on_delta, request.model)
        )
        async with self._session().post(
            self.url,
            data=payload,
            allow_redirects=False,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        ) as response:
            headers = _lowered(response.headers)
            if response.status >= 300:
                raise _status_error(response.status, await response.read(), headers)
            lines = SseLines()
            async for chunk in response.content.iter_any():
                for data in lines.feed(chunk):
                    if reader.take(data):
                        return reader.result(headers)
            for data in lines.close():
                if reader.take(data):
                    break
        return reader.result(headers)


class _ResponsesStream:
    """Responses API events: text deltas, then ``response.completed`` with usage."""

    def __init__(self, on_delta: DeltaSink) -> None:
        self.on_delta = on_delta
        self.parts: list[str] = []
        self.final: dict[str, Any] | None = None

    def take(self, data: str) -> bool:
        """Read one event; True once the stream is over."""
        if data.startswith("[DONE]"):
            return True
        event = _event(data)
        kind = event.get("type")
        if kind == "response.output_text.delta":
            delta = str(event.get("delta", ""))
            self.parts.append(delta)
            self.on_delta(delta)
        elif kind in ("response.completed", "response.incomplete"):
            final = event.get("response")
            self.final = final if isinstance(final, dict) else {}
        elif kind in ("response.failed", "error"):
            detail = _get(event.get("response"), "error") if kind == "response.failed" else event
            raise ServerError(f"the stream reported a failure: {redact(str(detail or event))}")
        return False

    def result(self, headers: dict[str, str]) -> Completion:
        if self.final is None:
            raise InvalidResponse("the stream ended without a response.completed event")
        return Completion(
            text="".join(self.parts) or _output_text(self.final),
            usage=_responses_usage(self.final.get("usage")),
            model=str(self.final.get("model") or ""),
            response_id=_optional_str(self.final.get("id")),
            headers=headers,
        )


class _ChatStream:
    """Chat Completions chunks: content deltas, a last chunk with usage, then ``[DONE]``."""

    def __init__(self, on_delta: DeltaSink, model: str) -> None:
        self.on_delta = on_delta
        self.parts: list[str] = []
        self.usage = Usage()
        self.model = model
        self.response_id: str | None = None

    def take(self, data: str) -> bool:
        if data.startswith("[DONE]"):
            return True
        chunk = _event(data)
        self.model = str(chunk.get("model") or self.model)
        self.response_id = _optional_str(chunk.get("id")) or self.response_id
        if isinstance(chunk.get("usage"), dict):
            self.usage = _chat_usage(chunk["usage"])
        for choice in _list(chunk.get("choices")):
            delta = choice.get("delta") if isinstance(choice, dict) else None
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                self.parts.append(content)
                self.on_delta(content)
        return False

    def result(self, headers: dict[str, str]) -> Completion:
        if not self.parts:
            raise InvalidResponse("the stream ended with no text")
        return Completion("".join(self.parts), self.usage, self.model, self.response_id, headers)


def _event(data: str) -> dict[str, Any]:
    """One event's JSON; an ``error`` in it is a failure the server reports (as the SDK does)."""
    event = json.loads(data)
    if not isinstance(event, dict):
        raise InvalidResponse(f"a stream event is not a JSON object: {data[:200]!r}")
    error = event.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else None
        raise ServerError(redact(str(message or "An error occurred during streaming"))[:500])
    return event


def _status_error(status: int, raw: bytes, headers: Mapping[str, str]) -> CallError:
    """A non-2xx answer, read as the SDK reads it: "Error code: 429 - <its message>"."""
    message, code = f"Error code: {status}", None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict):
        if isinstance(error.get("message"), str) and error["message"]:
            message += f" - {error['message']}"
        code = str(error["code"]) if error.get("code") is not None else None
    return status_error(status, redact(message)[:500], code=code, headers=headers)


def _responses_completion(data: Any, headers: dict[str, str]) -> Completion:
    if not isinstance(data, dict):
        raise InvalidResponse(f"the server's answer is not a response object: {str(data)[:200]!r}")
    status = data.get("status")
    if status == "failed":
        error = data.get("error")
        detail = error.get("message") if isinstance(error, dict) else None
        raise ServerError(f"the response failed: {redact(str(detail or 'no detail'))}")
    text = _output_text(data)
    if not text:
        raise InvalidResponse(f"the response has no output text (status {status})")
    return Completion(
        text=text,
        usage=_responses_usage(data.get("usage")),
        model=str(data.get("model") or ""),
        response_id=_optional_str(data.get("id")),
        headers=headers,
    )


def _chat_completion(data: Any, headers: dict[str, str]) -> Completion:
    choices = _list(data.get("choices")) if isinstance(data, dict) else []
    if not choices or not isinstance(choices[0], dict):
        raise InvalidResponse("the server's answer has no choices")
    message = choices[0].get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str) or not text:
        raise InvalidResponse("the server's answer has no text")
    assert isinstance(data, dict)  # choices came from it
    return Completion(
        text=text,
        usage=_chat_usage(data.get("usage")),
        model=str(data.get("model") or ""),
        response_id=_optional_str(data.get("id")),
        headers=headers,
    )


def _output_text(response: Mapping[str, Any]) -> str:
    """The text of every ``output_text`` part of every message, as the SDK's ``output_text``."""
    texts = []
    for item in _list(response.get("output")):
        if isinstance(item, dict) and item.get("type") == "message":
            for part in _list(item.get("content")):
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
    return "".join(texts)


def _responses_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        reasoning_tokens=_int(_get(usage.get("output_tokens_details"), "reasoning_tokens")),
        cached_tokens=_int(_get(usage.get("input_tokens_details"), "cached_tokens")),
    )


def _chat_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        reasoning_tokens=_int(_get(usage.get("completion_tokens_details"), "reasoning_tokens")),
        cached_tokens=_int(_get(usage.get("prompt_tokens_details"), "cached_tokens")),
    )


def _env_proxy(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names in lower case, as httpx2 hands them to the SDK path."""
    return {name.lower(): value for name, value in headers.items()}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _message(exc: BaseException) -> str:
    return redact(str(exc) or type(exc).__name__)[:500]


__all__ = ["FastOpenAIModel"]
