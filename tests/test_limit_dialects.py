"""Every dialect of rate-limit headers: read right, checked against evidence, never losing calls.

The headers are read in each dialect real servers speak (OpenAI's, a gateway's whose ``reset``
is the time to the next request, fixed windows told in seconds or as a Unix time, the IETF
draft's, Anthropic's RFC 3339 resets, none at all, headers with room while a burst is refused);
a reading that pacing proves wrong is dropped for the learned rate; and against the simulator's
``--limit-style`` of each, over loopback, every call is fulfilled with few 429s.
"""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from fanwise import Call, Engine, Fulfilled, Request, RetryPolicy
from fanwise.endpoints import Endpoint, EndpointPool
from fanwise.limits import (
    Ending,
    Evidence,
    LearnedRate,
    Quota,
    ServerPacing,
    Ticket,
    build_limiter,
    read_quotas,
)
from fanwise.models.fast import FastOpenAIModel
from fanwise.outcome import RateLimited
from fanwise.simulator import Latency
from fanwise.simulator.ratelimit import LIMIT_STYLES
from tests.conftest import StartSimulator

WALL = 1_800_000_000.0  # "now" for the absolute resets below


def test_openai_headers_reset_when_the_bucket_is_full() -> None:
    """x-ratelimit-*-requests: a bucket that refills to full by its reset (a Go duration)."""
    headers = {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "590",
        "x-ratelimit-reset-requests": "1s",
    }
    assert read_quotas(headers) == {"requests": Quota(600, 590, 1.0)}
    assert read_quotas(headers)["requests"].refill_rate() == pytest.approx(9.5)


def test_anthropic_resets_are_rfc_3339_times() -> None:
    """anthropic-ratelimit-requests-*: the reset is the time (to the millisecond) it is full."""
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:01.500Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "39000",
        "anthropic-ratelimit-tokens-reset": "2027-01-15T08:00:03Z",
    }
    now = datetime.fromisoformat("2027-01-15T08:00:00+00:00").timestamp()
    quotas = read_quotas(headers, wall=now)
    assert quotas["requests"] == Quota(50, 0, pytest.approx(1.5))  # type: ignore[arg-type]
    assert quotas["tokens"] == Quota(40000, 39000, pytest.approx(3.0))  # type: ignore[arg-type]


@pytest.mark.parametrize(("reset", "seconds"), [("7", 7.0), (str(int(WALL) + 7), 7.0), ("0", 0.0)])
def test_a_fixed_windows_reset_is_seconds_or_a_unix_time(reset: str, seconds: float) -> None:
    """Bare x-ratelimit-limit/remaining/reset: a window; reset in seconds, or when it ends."""
    headers = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "3", "X-RateLimit-Reset": reset}
    assert read_quotas(headers, wall=WALL) == {"requests": Quota(60, 3, seconds, window=True)}


def test_the_ietf_drafts_fields_and_policy() -> None:
    """RateLimit-Limit/Remaining/Reset with RateLimit-Policy 10;w=1, and the later RateLimit."""
    older = {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "4",
        "RateLimit-Reset": "1",
        "RateLimit-Policy": "10;w=1",
    }
    quota = read_quotas(older)["requests"]
    assert quota == Quota(10, 4, 1.0, window=True, period=1.0)
    assert quota.refill_rate() == 10.0
    later = {"RateLimit-Policy": '"default";q=100;w=60', "RateLimit": '"default";r=50;t=30'}
    assert read_quotas(later) == {"requests": Quota(100, 50, 30.0, window=True, period=60.0)}


def test_no_rate_headers_is_no_quota() -> None:
    """Retry-After alone reports no bucket: the learned rate is what paces."""
    assert read_quotas({"retry-after": "1", "content-type": "application/json"}) == {}


def next_request_429(remaining: int = 0) -> Ending:
    """A gateway's 429 whose ``reset`` is the time to the next request, not to a full bucket."""
    headers = {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": str(remaining),
        "x-ratelimit-reset-requests": "80ms",
    }
    error = RateLimited("limit", status_code=429, retry_after=0.08, headers=headers)
    return Ending(headers=headers, error=error)


def test_headers_that_pacing_proves_wrong_are_dropped_once_and_the_learned_rate_paces(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Read as OpenAI's, "80ms to the next request" is 118 a second; two rounds of attempts the
    mirror let through are refused by the limit: the headers are dropped, said once at debug
    level, and LearnedRate takes over from the answers' pace."""
    evidence = Evidence()
    pacing, learned = ServerPacing(evidence), LearnedRate(evidence)
    now = 0.0
    first = Ticket(1)
    for limit in (pacing, learned):
        limit.started(first, now)
    for limit in (pacing, learned):
        limit.finished(first, next_request_429(), now)  # the first report: not yet paced
    assert pacing.mirrors["requests"].rate > 100 and "refuted" not in repr(pacing)
    with caplog.at_level(logging.DEBUG, logger="fanwise.limits"):
        for _ in range(3):
            now += 0.1
            ticket = Ticket(1)
            assert pacing.wait(ticket, now) == 0.0  # the mirror says go
            for limit in (pacing, learned):
                limit.started(ticket, now)
            for limit in (pacing, learned):
                limit.finished(ticket, next_request_429(), now + 0.01)
    assert evidence.headers_refuted and not pacing.mirrors
    assert learned.rate is not None  # the learned rate paces from here
    said = [r for r in caplog.records if "not followed" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.DEBUG


def test_right_headers_are_kept() -> None:
    """OpenAI's headers read right: the 429s of the first round, before any report, prove
    nothing against them, and the mirror paces at the bucket's rate."""
    evidence = Evidence()
    pacing = ServerPacing(evidence)
    tickets = [Ticket(1) for _ in range(8)]
    for ticket in tickets:
        pacing.started(ticket, 0.0)
    dry = {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "950ms",
    }
    for ticket in tickets:
        refused = RateLimited("x", retry_after=0.1, headers=dry)
        pacing.finished(ticket, Ending(headers=dry, error=refused), 0.0)
    assert not evidence.headers_refuted
    assert pacing.mirrors["requests"].rate == pytest.approx(10.0)


CALLS = 250
RPM = 6000  # 100 a second; a bucket of one second holds 100


async def run_against(
    start_simulator: StartSimulator, style: str, *, endpoints: int = 1, retries: int = 3
) -> tuple[int, int, int]:
    """CALLS calls at the default concurrency (8) through the adaptive limiter against servers of
    ``style`` at RPM with a one-second bucket that starts empty: fulfilled, requests, 429s."""
    sims = [
        await start_simulator(
            latency=Latency.fixed(0.05),
            rpm=RPM,
            burst=1.0,
            start_empty=True,
            limit_style=style,
        )
        for _ in range(endpoints)
    ]
    models = [FastOpenAIModel(api_key="t", base_url=sim.base_url) for sim in sims]
    limited = zip(sims, models, strict=True)
    pool = EndpointPool([Endpoint(s.base_url, m, build_limiter(adaptive=True)) for s, m in limited])
    engine = Engine(pool, limiter=pool, retry=RetryPolicy(retries=retries))
    try:
        outcomes = await engine.run(Call(Request.text(f"q{i}")) for i in range(CALLS))
    finally:
        await pool.aclose()
    stats = [sim.stats() for sim in sims]
    refused = sum(s.by_status.get(429, 0) for s in stats)
    fulfilled = sum(isinstance(o, Fulfilled) for o in outcomes)
    return fulfilled, sum(s.requests for s in stats), refused


DIALECTS = [style for style in LIMIT_STYLES if style != "proxy"]


@pytest.mark.parametrize("style", DIALECTS)
async def test_every_dialect_fulfils_every_call_with_few_429s(
    start_simulator: StartSimulator, style: str
) -> None:
    """Each --limit-style, local engine: every call fulfilled, 429s within one window (8) plus
    10 % of the calls."""
    fulfilled, requests, refused = await run_against(start_simulator, style)
    assert fulfilled == CALLS, (style, requests, refused)
    assert refused <= 8 + CALLS // 10, (style, requests, refused)


async def test_with_no_retries_a_limit_still_finishes_every_call(
    start_simulator: StartSimulator,
) -> None:
    """--retries 0 against a gateway's limit: its 429s are back-pressure, every call fulfilled."""
    fulfilled, requests, refused = await run_against(start_simulator, "next-request", retries=0)
    assert fulfilled == CALLS and refused > 0, (requests, refused)


async def test_two_endpoints_each_paced_by_its_own_evidence(
    start_simulator: StartSimulator,
) -> None:
    """Two gateways of the next-request dialect: every call fulfilled, 429s within the bound."""
    fulfilled, requests, refused = await run_against(start_simulator, "next-request", endpoints=2)
    assert fulfilled == CALLS and refused <= 8 + CALLS // 10, (requests, refused)
