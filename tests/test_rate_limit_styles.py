"""How servers tell their limits, over real HTTP: OpenAI's headers, a proxy's bare Retry-After,
Gemini's RetryInfo, a limit that drops mid-run; and noise that the adaptive limits ignore."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from fanwise import Call, Engine, Fulfilled, Request, RetryPolicy
from fanwise.limits import AdaptiveConcurrency, LearnedRate, Limits, build_limiter
from fanwise.models.compat import status_error
from fanwise.models.fast import FastOpenAIModel
from fanwise.models.openai import OpenAIModel
from fanwise.outcome import AuthError, RateLimited, is_retryable
from tests.conftest import StartSimulator


async def post(url: str, prompt: str = "hello") -> tuple[int, dict[str, str], Any]:
    body = {"model": "gpt-5", "input": prompt}
    async with aiohttp.ClientSession() as http, http.post(f"{url}/responses", json=body) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.json()


async def test_a_proxy_tells_its_limit_by_a_whole_second_retry_after_only(
    start_simulator: StartSimulator,
) -> None:
    """--limit-style proxy: no x-ratelimit-* header on any answer; a 429 says retry-after: 1."""
    sim = await start_simulator(rpm=1, limit_style="proxy")
    status, headers, _ = await post(sim.base_url)
    assert status == 200 and not any(h.startswith("x-ratelimit") for h in headers)
    status, headers, _ = await post(sim.base_url)
    assert status == 429 and headers["retry-after"] == "60" and "retry-after-ms" not in headers
    assert not any(h.startswith("x-ratelimit") for h in headers)


@pytest.mark.parametrize("transport", ["aiohttp", "sdk"])
async def test_gemini_says_how_long_to_wait_in_the_body_and_both_transports_read_it(
    start_simulator: StartSimulator, transport: str
) -> None:
    """A 429 with RetryInfo.retryDelay "45.800s" and no Retry-After waits 45.8 s."""
    sim = await start_simulator(faults={"429": 1.0}, retry_after=45.8, limit_style="gemini")
    status, headers, body = await post(sim.base_url)
    assert status == 429 and "retry-after" not in headers
    assert body[0]["error"]["details"][0]["retryDelay"] == "45.800s"
    cls = OpenAIModel if transport == "sdk" else FastOpenAIModel
    model = cls(api_key="test-key", base_url=sim.base_url)
    try:
        with pytest.raises(RateLimited) as caught:
            await model.complete(Request.text("hello"))
    finally:
        await model.aclose()
    assert caught.value.retry_after == pytest.approx(45.8)


def test_an_empty_quota_stays_fatal_whatever_the_body_says() -> None:
    """insufficient_quota is an auth error, never retried, even with a Retry-After or RetryInfo."""
    body = [{"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo"}]}}]
    error = status_error(
        429,
        "quota",
        code="insufficient_quota",
        headers={"retry-after": "1"},
        body=json.dumps(body).encode(),
    )
    assert isinstance(error, AuthError) and not is_retryable(error)


async def test_the_request_limit_changes_when_told_to(start_simulator: StartSimulator) -> None:
    """--rpm-change 0=60: the limit reported is 60 from the first request on."""
    sim = await start_simulator(rpm=600, rpm_change=(0.0, 60))
    _, headers, _ = await post(sim.base_url)
    assert headers["x-ratelimit-limit-requests"] == "60"


async def test_random_429s_without_headers_leave_the_adaptive_limits_alone(
    start_simulator: StartSimulator,
) -> None:
    """30 % of requests refused at random with a short Retry-After: every call ends fulfilled,
    and neither the window nor a learned rate is cut (noise, not a quota)."""
    sim = await start_simulator(faults={"429": 0.3}, retry_after=0.01, limit_style="proxy")
    limiter = build_limiter(adaptive=True)
    assert isinstance(limiter, Limits)
    _, learned, aimd = limiter.limits
    assert isinstance(learned, LearnedRate) and isinstance(aimd, AdaptiveConcurrency)
    model = FastOpenAIModel(api_key="test-key", base_url=sim.base_url)
    engine = Engine(model, concurrency=20, limiter=limiter, retry=RetryPolicy(retries=10))
    try:
        outcomes = await engine.run(Call(Request.text(f"q{i}")) for i in range(200))
    finally:
        await model.aclose()
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    assert sim.stats().by_status.get(429, 0) > 40  # the noise was there
    assert aimd.decreases == 0 and learned.rate is None
