"""Google's OpenAI-compatible endpoint for Gemini, as the simulator's third face.

``POST /v1beta/openai/chat/completions`` is Chat Completions through the same brain; what
differs is how it fails and what it does not send, as Google's endpoint does:

- no ``x-ratelimit-*`` headers, and no ``Retry-After``: a 429 says how long to wait only in its
  body, as ``RetryInfo.retryDelay`` (``"0.050s"``), beside a ``QuotaFailure`` naming the quota
  (per minute);
- the ``spend`` fault is a 429 for a per-day quota (``...PerDay...``), which no wait clears;
- every error body is Google's ``[{"error": {"code", "message", "status", "details"}}]``.
"""

from __future__ import annotations

import json

from fanwise.simulator import bodies
from fanwise.simulator.reply import Reply

PREFIX = "/v1beta/openai"
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_QUOTA = "type.googleapis.com/google.rpc.QuotaFailure"
_RETRY = "type.googleapis.com/google.rpc.RetryInfo"
_METRIC = "generativelanguage.googleapis.com/generate_content_requests"
_DROPPED = ("x-ratelimit-", "retry-after")


def translate(reply: Reply) -> Reply:
    """The core's OpenAI-shaped reply as Google's endpoint sends it; drops and hangs pass."""
    if reply.action != "answer":
        return reply
    headers = {k: v for k, v in reply.headers.items() if not k.startswith(_DROPPED)}
    if reply.status < 300:
        return Reply(
            body=reply.body,
            tail=reply.tail,
            headers=headers,
            content_type=reply.content_type,
            delay=reply.delay,
        )
    message, code = _openai_error(reply.body)
    error: dict[str, object] = {
        "code": reply.status,
        "message": message,
        "status": _STATUS.get(reply.status, "UNKNOWN"),
    }
    if reply.status == 429:
        daily = code == "insufficient_quota"  # the spend fault
        quota = "GenerateRequestsPerDayPerProjectPerModel" if daily else "GenerateRequestsPerMinute"
        violation = {"quotaMetric": _METRIC, "quotaId": quota, "quotaValue": "60"}
        details: list[dict[str, object]] = [{"@type": _QUOTA, "violations": [violation]}]
        wait = reply.headers.get("retry-after-ms")
        if wait is not None and not daily:
            details.append({"@type": _RETRY, "retryDelay": f"{int(wait) / 1000:.3f}s"})
        error["details"] = details
    body = bodies.dumps([{"error": error}])
    return Reply(status=reply.status, body=body, headers=headers, delay=reply.delay)


def _openai_error(raw: bytes) -> tuple[str, str | None]:
    try:
        error = json.loads(raw)["error"]
        return str(error["message"]), error.get("code")
    except (ValueError, KeyError, TypeError):
        return "simulated error", None


__all__ = ["PREFIX", "translate"]
