"""Gemini's own API (generateContent, streamGenerateContent, embedContent) over aiohttp.

A request to ``Endpoint.GENERATE`` goes to ``POST {root}/models/{model}:generateContent`` (root:
``https://generativelanguage.googleapis.com/v1beta``), streamed to
``:streamGenerateContent?alt=sse`` when ``on_delta`` is given; ``Endpoint.EMBED_CONTENT`` to
``:embedContent``. The key goes as ``x-goog-api-key``. The model is the body's ``model`` (the
``GenerateContentRequest``'s own field, ``models/`` optional): REST takes it in the path, so the
body is sent without that one field and otherwise as written.

A ``GenerateContentResponse`` is read into a completion: the text of its first candidate's parts
(thought parts left out), its function calls, ``finishReason`` (``MAX_TOKENS`` as ``length``;
``SAFETY`` and the other blocks, or a ``promptFeedback.blockReason``, as a refusal) and
``usageMetadata`` (input ``promptTokenCount``, of which cached ``cachedContentTokenCount``;
output ``candidatesTokenCount`` plus ``thoughtsTokenCount``, which Google bills as output).
Errors are Google's (``{"error": {"code", "message", "status", "details"}}``), read by
``models.gemini.gemini_error``: ``RetryInfo`` is the wait, a per-day ``QuotaFailure`` final.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fanwise.models.base import Completion, DeltaSink, Endpoint, Request, ToolCall, Usage
from fanwise.models.bodies import error_from_body, lowered_headers
from fanwise.models.http_session import SharedSession, transport_errors
from fanwise.models.sse import SseLines
from fanwise.outcome import BadRequest, InvalidResponse

DEFAULT_ROOT = "https://generativelanguage.googleapis.com/v1beta"
BLOCKED = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)
"""Finish reasons that mean the answer was withheld: read as a refusal."""


def native_root(base_url: str) -> str:
    """The native API's root from a Gemini base URL: the compatible endpoint's without
    ``/openai`` (``.../v1beta/openai`` -> ``.../v1beta``)."""
    return base_url.rstrip("/").removesuffix("/openai")


def model_path(body: Mapping[str, Any]) -> str:
    """``models/{model}`` from the body's ``model``; ``BadRequest`` when there is none."""
    model = body.get("model")
    if not isinstance(model, str) or not model.removeprefix("models/"):
        raise BadRequest('a Gemini generateContent body needs its model: add "model"')
    return "models/" + model.removeprefix("models/")


def sent_body(body: Mapping[str, Any]) -> bytes:
    """The body as sent: the user's, without the ``model`` the URL carries."""
    return json.dumps({k: v for k, v in body.items() if k != "model"}, ensure_ascii=False).encode()


class GeminiNative:
    """The native endpoints of one key and root; one ``SharedSession`` for every call."""

    def __init__(self, *, api_key: str, root: str = DEFAULT_ROOT) -> None:
        self.root = root.rstrip("/")
        headers = {"x-goog-api-key": api_key, "content-type": "application/json"}
        self._http = SharedSession(self.root, headers)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(self, request: Request, on_delta: DeltaSink | None = None) -> Completion:
        body = request.body
        url = f"{self.root}/{model_path(body)}:{request.endpoint.value}"
        with transport_errors():
            if on_delta is not None and request.endpoint is Endpoint.GENERATE:
                return await self._stream(url, body, on_delta)
            async with self._http.post(url, sent_body(body)) as response:
                raw = await response.read()
                headers = lowered_headers(response.headers)
                if response.status >= 300:
                    raise error_from_body(response.status, raw, headers)
        return read_native(request.endpoint, raw, headers)

    async def create_cache(
        self, model: str, system: str | None, context: str, ttl: float
    ) -> dict[str, Any]:
        """A ``cachedContents`` resource holding ``system`` and ``context`` for ``model``;
        Google's answer (``name``, ``usageMetadata.totalTokenCount``, ``expireTime``)."""
        body: dict[str, Any] = {
            "model": "models/" + model.removeprefix("models/"),
            "contents": [{"role": "user", "parts": [{"text": context}]}],
            "ttl": f"{max(1, round(ttl))}s",
        }
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        data = json.dumps(body, ensure_ascii=False).encode()
        with transport_errors():
            async with self._http.post(f"{self.root}/cachedContents", data) as response:
                raw = await response.read()
                if response.status >= 300:
                    raise error_from_body(response.status, raw, lowered_headers(response.headers))
        created = json.loads(raw)
        if not isinstance(created, dict) or not isinstance(created.get("name"), str):
            raise InvalidResponse(f"a cachedContents answer without a name: {raw[:200]!r}")
        return created

    async def delete_cache(self, name: str) -> None:
        """Delete ``name`` (``cachedContents/...``): storage is billed until then."""
        with transport_errors():
            async with self._http.get().delete(f"{self.root}/{name}") as response:
                raw = await response.read()
                if response.status >= 300 and response.status != 404:
                    raise error_from_body(response.status, raw, lowered_headers(response.headers))

    async def _stream(self, url: str, body: Mapping[str, Any], on_delta: DeltaSink) -> Completion:
        stream_url = url.removesuffix(":generateContent") + ":streamGenerateContent?alt=sse"
        chunks: list[dict[str, Any]] = []
        async with self._http.post(stream_url, sent_body(body)) as response:
            headers = lowered_headers(response.headers)
            if response.status >= 300:
                raise error_from_body(response.status, await response.read(), headers)
            lines = SseLines()
            async for piece in response.content.iter_any():
                for data in lines.feed(piece):
                    chunks.append(_chunk(data, on_delta))
            for data in lines.close():
                chunks.append(_chunk(data, on_delta))
        if not chunks:
            raise InvalidResponse("the stream ended before any answer")
        whole = joined(chunks)
        if not _finished(whole):
            raise InvalidResponse("the stream ended before its finishReason")
        raw = json.dumps(whole, ensure_ascii=False).encode()
        return generate_completion(whole, raw, headers)


def _chunk(data: str, on_delta: DeltaSink) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise InvalidResponse(f"a stream event is not JSON: {data[:200]!r}") from exc
    if not isinstance(chunk, dict):
        raise InvalidResponse(f"a stream event is not a JSON object: {data[:200]!r}")
    text = _text(_parts(chunk))
    if text:
        on_delta(text)
    return chunk


def joined(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The streamed chunks as the one ``GenerateContentResponse`` they add up to."""
    parts: list[dict[str, Any]] = []
    for chunk in chunks:
        for part in _parts(chunk):
            if "text" in part and parts and set(parts[-1]) == set(part):
                parts[-1] = {**part, "text": str(parts[-1]["text"]) + str(part["text"])}
            else:
                parts.append(dict(part))
    last = chunks[-1]
    candidate = dict((last.get("candidates") or [{}])[0])
    candidate["content"] = {"role": "model", "parts": parts}
    whole = {k: v for k, v in last.items() if k != "candidates"}
    return {"candidates": [candidate], **whole}


def _finished(whole: Mapping[str, Any]) -> bool:
    candidates = whole.get("candidates") or [{}]
    return bool(candidates[0].get("finishReason")) or bool(_blocked(whole))


def read_native(endpoint: Endpoint, raw: bytes, headers: Mapping[str, str]) -> Completion:
    """A 2xx body of the native API as a completion (``InvalidResponse`` if it is not one)."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidResponse(f"the server's answer is not JSON: {raw[:200]!r}") from exc
    if endpoint is Endpoint.EMBED_CONTENT:
        return embed_completion(data, raw, headers)
    return generate_completion(data, raw, headers)


def generate_completion(data: Any, raw: bytes, headers: Mapping[str, str]) -> Completion:
    """A ``GenerateContentResponse`` as a completion: text, calls, finish, refusal, usage."""
    if not isinstance(data, dict):
        raise InvalidResponse(f"the server's answer is not a response: {str(data)[:200]!r}")
    parts = _parts(data)
    text = _text(parts)
    calls = tuple(
        ToolCall(
            id=str(call.get("id") or ""),
            name=str(call.get("name") or ""),
            arguments=json.dumps(call.get("args") or {}, ensure_ascii=False),
        )
        for part in parts
        if isinstance(call := part.get("functionCall"), dict)
    )
    candidates = data.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else {}
    finish = first.get("finishReason") if isinstance(first, dict) else None
    blocked = _blocked(data) or (finish if finish in BLOCKED else None)
    refusal = f"blocked: {blocked}" if blocked and not text else None
    if not (text or calls or refusal):
        raise InvalidResponse(f"the response has no text (finish reason {finish})")
    return Completion(
        text=text,
        usage=generate_usage(data.get("usageMetadata")),
        model=str(data.get("modelVersion") or ""),
        response_id=data["responseId"] if isinstance(data.get("responseId"), str) else None,
        headers=headers,
        raw=raw,
        endpoint=Endpoint.GENERATE,
        finish_reason=_finish(finish),
        refusal=refusal,
        tool_calls=calls,
        request_id=headers.get("x-request-id"),
    )


def embed_completion(data: Any, raw: bytes, headers: Mapping[str, str]) -> Completion:
    """An ``EmbedContentResponse``: no text; ``Completion.embeddings`` reads its values."""
    embedding = data.get("embedding") if isinstance(data, dict) else None
    if not isinstance(embedding, dict) or not isinstance(embedding.get("values"), list):
        raise InvalidResponse(f"the answer has no embedding: {raw[:200]!r}")
    usage = generate_usage(data.get("usageMetadata"))
    return Completion(text="", usage=usage, headers=headers, raw=raw,
                      endpoint=Endpoint.EMBED_CONTENT)  # fmt: skip


def generate_usage(usage: Any) -> Usage:
    """``usageMetadata`` as fanwise's usage; thoughts are output, as Google bills them."""
    if not isinstance(usage, dict):
        return Usage()
    thoughts = _int(usage.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=_int(usage.get("promptTokenCount")),
        output_tokens=_int(usage.get("candidatesTokenCount")) + thoughts,
        reasoning_tokens=thoughts,
        cached_tokens=_int(usage.get("cachedContentTokenCount")),
    )


def _parts(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    candidates = data.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else None
    content = first.get("content") if isinstance(first, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(str(p["text"]) for p in parts if "text" in p and not p.get("thought"))


def _blocked(data: Mapping[str, Any]) -> str | None:
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return str(reason) if reason else None


def _finish(reason: Any) -> str | None:
    if not isinstance(reason, str):
        return None
    return {"STOP": "stop", "MAX_TOKENS": "length"}.get(reason, reason.lower())


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


__all__ = [
    "DEFAULT_ROOT",
    "GeminiNative",
    "embed_completion",
    "generate_completion",
    "generate_usage",
    "joined",
    "model_path",
    "native_root",
    "read_native",
    "sent_body",
]
