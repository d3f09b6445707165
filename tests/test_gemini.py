"""Gemini over Google's OpenAI-compatible endpoint: Chat Completions, 429s read from the body."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fanwise import Call, Engine, Fulfilled, Request
from fanwise.models.base import Endpoint
from fanwise.models.bodies import error_from_body
from fanwise.models.gemini import DEFAULT_BASE_URL, GeminiModel, gemini_error
from fanwise.outcome import AuthError, ErrorKind, RateLimited
from fanwise.retry import NoWait
from fanwise.simulator import Simulator
from tests.test_fault_matrix import HANG_TIMEOUT, MATRIX, POLICY, PROMPT, RETRY_AFTER, TIMEOUT, Row

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


def gemini(sim: Simulator) -> GeminiModel:
    return GeminiModel(api_key="g", base_url=sim.url + "/v1beta/openai", environ={})


def ask(prompt: str = PROMPT) -> Call:
    return Call(
        Request.text(prompt, "gemini-2.5-flash", endpoint=Endpoint.CHAT, reasoning_effort=None)
    )


GEMINI_MATRIX = [
    # Google's 429 says how long only in its body; its 503 says nothing of the kind.
    Row(r.fault, r.kind, r.retried, retry_after=r.fault == "429")
    for r in MATRIX
]


@pytest.mark.parametrize("row", GEMINI_MATRIX, ids=lambda r: r.fault)
async def test_gemini_fault_once_then_success(simulator: Simulator, row: Row) -> None:
    """Every fault of the matrix, once, through Google's face: the same kinds and attempts; a
    429 waits its RetryInfo exactly, and a per-day quota (``spend``) is never retried."""
    simulator.script(PROMPT, [row.fault, "ok"], retry_after=RETRY_AFTER)
    sleep = NoWait()
    timeout = HANG_TIMEOUT if row.fault == "hang" else TIMEOUT
    async with gemini(simulator) as model:
        engine = Engine(model, retry=POLICY, timeout=timeout, sleep=sleep, seed=3)
        [outcome] = await engine.run([ask()])
    first = outcome.attempts[0]
    assert first.error is not None and first.error["kind"] == row.kind.value, first.error
    assert len(outcome.attempts) == (2 if row.retried else 1)
    assert isinstance(outcome, Fulfilled) == row.retried
    if row.retry_after:
        assert outcome.attempts[1].waited == RETRY_AFTER, "RetryInfo.retryDelay, exactly"
    elif row.retried:
        assert 0.0 <= outcome.attempts[1].waited <= POLICY.backoff_cap(1)


async def test_gemini_sends_no_rate_limit_headers_and_its_429_body_is_googles(
    simulator: Simulator,
) -> None:
    """Google's face: no x-ratelimit-* or Retry-After; the 429's body is a list with details."""
    simulator.script(PROMPT, ["429"], retry_after=2.5)
    async with gemini(simulator) as model:
        with pytest.raises(RateLimited) as caught:
            await model.complete(ask().request)
    error = caught.value
    assert error.retry_after == 2.5 and not any(k.startswith("x-ratelimit") for k in error.headers)
    assert json.loads(error.body or b"")[0]["error"]["status"] == "RESOURCE_EXHAUSTED"
