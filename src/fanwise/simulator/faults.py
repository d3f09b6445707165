"""The reply for each injected fault, shaped as the real failure looks on the wire.

Error statuses carry OpenAI's error envelope. A 4xx is refused at once, as a gateway would; a
5xx, ``garbage`` and ``empty`` come after the latency, as if the model had run; ``drop`` closes
the connection after the latency; ``hang`` holds it open until the client gives up.
"""

from __future__ import annotations

from fanwise.simulator import bodies
from fanwise.simulator.ratelimit import format_duration, retry_headers, styled_error
from fanwise.simulator.reply import JSON, SSE, Fate, Reply
from fanwise.simulator.request import ApiRequest


def fault_reply(
    req: ApiRequest,
    fate: Fate,
    headers: dict[str, str],
    *,
    rid: str,
    latency: float,
    retry_after: float,
    style: str = "openai",
) -> Reply:
    """The reply that serves ``fate.fault`` (a status such as ``"429"``, or a fault word)."""
    fault = str(fate.fault)
    if fault == "drop":
        return Reply(action="drop", delay=latency)
    if fault == "hang":
        return Reply(action="hang")
    if fault in ("garbage", "empty"):
        body = _garbage(req, rid) if fault == "garbage" else _empty(req, rid)
        return Reply(
            body=body, headers=headers, content_type=SSE if req.stream else JSON, delay=latency
        )
    if fault == "spend":
        message = "You exceeded your current quota, please check your plan and billing details."
        code = "insufficient_quota"
        quota = bodies.error_body(429, message, kind=code, code=code)
        return Reply(status=429, body=bodies.dumps(quota), headers=headers)
    status = int(fault)
    extra: dict[str, str] = {}
    hint = retry_after if status in (429, 503) else None
    if hint is not None:
        extra = retry_headers(hint, style)
    body = bodies.dumps(styled_error(_error(req, status, retry_after), hint, style))
    delay = latency if status >= 500 else 0.0
    return Reply(status=status, body=body, headers={**headers, **extra}, delay=delay)


def _error(req: ApiRequest, status: int, retry_after: float) -> bodies.Json:
    if status == 400:
        return bodies.error_body(
            400,
            "Your input exceeds the context window of this model. Please adjust your input and "
            "try again. (simulated)",
            param="input" if req.api == "responses" else "messages",
        )
    if status == 404:
        message = f"The model `{req.model}` does not exist or you do not have access to it."
        return bodies.error_body(404, message)
    if status == 429:
        message = (
            f"Rate limit reached for {req.model} in organization org-fanwise-simulator on "
            f"requests per min (RPM) (simulated). Please try again in "
            f"{format_duration(retry_after)}."
        )
        return bodies.error_body(429, message)
    return bodies.error_body(status)


def _garbage(req: ApiRequest, rid: str) -> bytes:
    """Cut-off JSON: what a proxy that died mid-body delivers."""
    if req.api == "chat":
        cut = b'{"id":"chatcmpl-%s","object":"chat.completion","choices":[{"index":0,"mess'
    else:
        cut = b'{"id":"resp_%s","object":"response","output":[{"type":"message","cont'
    if req.stream:
        named = b"event: response.created\n" if req.api == "responses" else b""
        return named + b"data: " + cut % rid.encode() + b"\n\n"
    return cut % rid.encode()


def _empty(req: ApiRequest, rid: str) -> bytes:
    """Valid JSON without the promised content; for a stream, one that ends before the answer."""
    if req.api == "chat":
        if req.stream:
            return b"data: [DONE]\n\n"
        return bodies.dumps({"id": f"chatcmpl-{rid}", "object": "chat.completion"})
    if req.stream:
        response = {"id": f"resp_{rid}", "object": "response", "status": "in_progress"}
        event: bodies.Json = {
            "type": "response.created",
            "sequence_number": 0,
            "response": response,
        }
        return bodies.sse([event], named=True)
    return bodies.dumps({"id": f"resp_{rid}", "object": "response", "status": "completed"})


__all__ = ["fault_reply"]
