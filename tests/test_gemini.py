"""Gemini over Google's OpenAI-compatible endpoint: Chat Completions, 429s read from the body."""

from __future__ import annotations

import json
from typing import Any

from fanwise import Request
from fanwise.models.base import Endpoint
from fanwise.models.bodies import error_from_body
from fanwise.models.gemini import DEFAULT_BASE_URL, GeminiModel, gemini_error
from fanwise.outcome import AuthError, ErrorKind, RateLimited
from fanwise.simulator import Simulator

RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "45.8s"}


def quota(quota_id: str) -> dict[str, Any]:
    violation = {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                 "quotaId": quota_id}  # fmt: skip
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}


def google_429(*details: dict[str, Any]) -> bytes:
    """A 429 body as the compatible endpoint sends it: a list holding Google's error."""
    error = {"code": 429, "message": "Resource has been exhausted.", "status": "RESOURCE_EXHAUSTED"}
    return json.dumps([{"error": {**error, "details": list(details)}}]).encode()


def test_the_retry_delay_in_the_body_becomes_the_wait() -> None:
    """RetryInfo.retryDelay "45.8s", with no Retry-After header, is a 45.8 s retry_after."""
    error = gemini_error(error_from_body(429, google_429(quota("PerMinute"), RETRY_INFO), {}))
    assert isinstance(error, RateLimited) and error.retry_after == 45.8
    assert error.kind is ErrorKind.RATE_LIMITED and error.body is not None


def test_a_per_day_quota_is_final() -> None:
    """A QuotaFailure naming a per-day quota will not clear by waiting: auth, never retried."""
    body = google_429(quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier"), RETRY_INFO)
    error = gemini_error(error_from_body(429, body, {}))
    assert isinstance(error, AuthError) and not error.retryable


def test_a_header_wait_wins_and_other_errors_pass_unchanged() -> None:
    """A Retry-After header is kept as it is; an error without details is the same error."""
    headed = error_from_body(429, google_429(RETRY_INFO), {"retry-after": "2"})
    assert gemini_error(headed).retry_after == 2.0
    plain = error_from_body(500, b'{"error": {"message": "boom"}}', {})
    assert gemini_error(plain) is plain


async def test_gemini_answers_chat_completions_with_its_key(simulator: Simulator) -> None:
    """The model sends Chat Completions bodies unchanged, extra Google fields included."""
    extra = {"extra_body": {"google": {"thinking_config": {"thinking_budget": 0}}}}
    request = Request.text(
        "Kyoto temples?", "gemini-2.5-flash", endpoint=Endpoint.CHAT, extra=extra,
        reasoning_effort=None,
    )  # fmt: skip
    async with GeminiModel(api_key="g", base_url=simulator.base_url, environ={}) as model:
        completion = await model.complete(request)
    assert completion.text and completion.endpoint is Endpoint.CHAT
    sent = json.loads(simulator.received[-1][1])
    assert sent["extra_body"] == extra["extra_body"] and "reasoning_effort" not in sent
    assert GeminiModel(api_key="g", environ={}).base_url == DEFAULT_BASE_URL
