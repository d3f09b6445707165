"""Limits on a fake clock: client buckets, header pacing, Retry-After holds, AIMD, sharing."""

from __future__ import annotations

import asyncio
import math

import pytest

from fanwise import Call, Engine, Fulfilled, Request, RetryPolicy
from fanwise.limits import (
    AdaptiveConcurrency,
    Bucket,
    Ending,
    Evidence,
    LearnedRate,
    Limits,
    Quota,
    ServerPacing,
    Signal,
    Ticket,
    Unlimited,
    build_limiter,
    parse_duration,
    read_quotas,
)
from fanwise.models.base import Completion, DeltaSink, Model, Usage
from fanwise.outcome import RateLimited
from fanwise.retry import NoWait
from tests.scripted import ScriptedModel


class FakeClock:
    """A clock that moves only when the limiter sleeps; every sleep is kept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)  # let the tasks that are ready run first, at the old time
        self.now += seconds


def quota_headers(
    requests: tuple[int, int], tokens: tuple[int, int] | None = None
) -> dict[str, str]:
    """OpenAI's headers for per-minute buckets: ``reset`` is the time a refill at limit / 60 a
    second takes to make the bucket full."""
    headers: dict[str, str] = {}
    for unit, pair in (("requests", requests), ("tokens", tokens)):
        if pair is not None:
            limit, remaining = pair
            headers |= {
                f"x-ratelimit-limit-{unit}": str(limit),
                f"x-ratelimit-remaining-{unit}": str(remaining),
                f"x-ratelimit-reset-{unit}": f"{(limit - remaining) * 60 / limit:.3f}s",
            }
    return headers


async def start_times(limits: Limits, clock: FakeClock, n: int, tokens: int = 1) -> list[float]:
    """Take ``n`` permits one after another, each finishing at once; return when each started."""
    times = []
    for _ in range(n):
        async with limits.permit(tokens):
            times.append(round(clock.now, 6))
    return times


async def test_rpm_bucket_allows_a_one_second_burst_then_paces_evenly() -> None:
    """--rpm 600 lets 10 requests go at once, then one every 0.1 s."""
    clock = FakeClock()
    limits = Limits(Bucket.rpm(600), clock=clock, sleep=clock.sleep)
    times = await start_times(limits, clock, 15)
    assert times[:10] == [0.0] * 10
    assert times[10:] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


async def test_tpm_bucket_is_corrected_from_usage_after_the_call() -> None:
    """A call estimated at 5 tokens that used 65 puts the bucket in debt the next call waits out."""
    clock = FakeClock()
    bucket = Bucket.tpm(600, burst=10)
    limits = Limits(bucket, clock=clock, sleep=clock.sleep)
    async with limits.permit(5) as permit:
        permit.record(tokens=65, headers={})
    assert bucket.level == pytest.approx(10 - 5 - 60)
    # The next call needs a full bucket (10 tokens): 65 tokens of refill at 10 a second.
    async with limits.permit(5):
        assert clock.now == pytest.approx(6.5)


async def test_limits_learn_what_calls_cost_beyond_their_estimate() -> None:
    """Calls that each spend 40 tokens more than estimated soon have 40 added to their tickets."""
    clock = FakeClock()
    bucket = Bucket.tpm(600_000, burst=100_000)
    limits = Limits(bucket, clock=clock, sleep=clock.sleep)
    for _ in range(30):
        async with limits.permit(10) as permit:
            permit.record(tokens=50, headers={})
    assert limits.extra_tokens == pytest.approx(40, abs=0.1)
    level = bucket.level
    async with limits.permit(10):
        assert level - bucket.level == 50


async def test_a_call_dearer_than_the_bucket_waits_for_a_full_bucket_not_forever() -> None:
    """A 50-token call on a 10-token bucket starts once the bucket is full, then runs into debt."""
    clock = FakeClock()
    limits = Limits(Bucket.tpm(600, burst=10), clock=clock, sleep=clock.sleep)
    times = await start_times(limits, clock, 3, tokens=50)
    assert times == pytest.approx([0.0, 5.0, 10.0])


async def test_a_refund_never_overfills_the_bucket() -> None:
    """A call that used fewer tokens than estimated gives them back, up to the bucket's size."""
    clock = FakeClock()
    bucket = Bucket.tpm(600, burst=10)
    limits = Limits(bucket, clock=clock, sleep=clock.sleep)
    async with limits.permit(8) as permit:
        permit.record(tokens=1, headers={})
    assert bucket.level == pytest.approx(9.0)
    async with limits.permit(8) as permit:
        permit.record(tokens=0, headers={})
    assert bucket.level == pytest.approx(9.0)


def test_bucket_settings_are_checked() -> None:
    """A zero rate or a burst below one unit is refused with the reason."""
    with pytest.raises(ValueError, match="above 0"):
        Bucket.rpm(0)
    with pytest.raises(ValueError, match="at least 1"):
        Bucket.tpm(1000, burst=0.5)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("45.8s", 45.8),
        ("0.25", 0.25),
        ("250us", 0.00025),
        ("soon", None),
        ("1s junk", None),
        ("", None),
    ],
)
def test_durations_are_read_as_openai_writes_them(text: str, seconds: float | None) -> None:
    """x-ratelimit-reset-* durations parse to seconds; anything else is None, not a crash."""
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_quotas_are_read_from_headers_in_any_case() -> None:
    """Both units are read; a unit with a missing or broken header is left out."""
    headers = {k.upper(): v for k, v in quota_headers((600, 599), (30000, 29000)).items()}
    assert read_quotas(headers) == {
        "requests": Quota(600, 599, 0.1),
        "tokens": Quota(30000, 29000, 2.0),
    }
    assert read_quotas({"x-ratelimit-limit-requests": "600"}) == {}
    broken = quota_headers((600, 1)) | {"x-ratelimit-remaining-requests": "many"}
    assert read_quotas(broken) == {}


async def test_header_pacing_spends_what_the_server_reports_then_waits_for_refill() -> None:
    """After a report of 3 requests left at 600/min, 3 go at once and the next waits 0.1 s."""
    clock = FakeClock()
    limits = Limits(ServerPacing(), clock=clock, sleep=clock.sleep)
    async with limits.permit(1) as permit:
        permit.record(tokens=10, headers=quota_headers((600, 3)))
    times = await start_times(limits, clock, 5)
    assert times == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2], rel=1e-3)


async def test_header_pacing_subtracts_attempts_the_report_could_not_see() -> None:
    """A report from an attempt sent before two others leaves room for two fewer."""
    pacing = ServerPacing()
    first, second, third = Ticket(1), Ticket(1), Ticket(1)
    for ticket in (first, second, third):
        pacing.started(ticket, 0.0)
    pacing.finished(first, Ending(10, quota_headers((60, 5))), 0.0)
    assert pacing.mirrors["requests"].level == 3
    pacing.finished(second, Ending(10, quota_headers((60, 4))), 0.0)
    assert pacing.mirrors["requests"].level == 3


async def test_token_headers_pace_by_the_estimated_cost() -> None:
    """With 100 tokens reported left at 6000/min, a 300-token call waits 2 s for the refill."""
    clock = FakeClock()
    limits = Limits(ServerPacing(), clock=clock, sleep=clock.sleep)
    async with limits.permit(0) as permit:
        permit.record(tokens=0, headers=quota_headers((600, 500), (6000, 100)))
    async with limits.permit(300):
        assert clock.now == pytest.approx(2.0, rel=1e-3)


async def test_a_429_from_a_dry_bucket_holds_every_new_attempt_for_its_retry_after() -> None:
    """A 429 whose headers leave no room and say 'retry after 2.5 s' pauses the whole limiter."""
    clock = FakeClock()
    limits = Limits(ServerPacing(), clock=clock, sleep=clock.sleep)
    dry = quota_headers((600_000, 0))  # refills in 0.1 ms: only the hold can keep it waiting
    with pytest.raises(RateLimited):
        async with limits.permit(1):
            raise RateLimited("slow down", status_code=429, retry_after=2.5, headers=dry)
    async with limits.permit(1):
        assert clock.now == pytest.approx(2.5)


async def test_an_isolated_429_with_a_short_retry_after_holds_no_other_attempt() -> None:
    """A lone 429 with 'retry after 1 s' and no headers is noise: the next attempt goes at once."""
    clock = FakeClock()
    limits = Limits(ServerPacing(), clock=clock, sleep=clock.sleep)
    for _ in range(3):
        async with limits.permit(1):
            pass
    with pytest.raises(RateLimited):
        async with limits.permit(1):
            raise RateLimited("busy", status_code=429, retry_after=1.0)
    async with limits.permit(1):
        assert clock.now == 0.0


async def test_a_long_retry_after_holds_every_new_attempt() -> None:
    """A 429 asking for a minute is a pause for the whole run, headers or not."""
    clock = FakeClock()
    limits = Limits(ServerPacing(), clock=clock, sleep=clock.sleep)
    with pytest.raises(RateLimited):
        async with limits.permit(1):
            raise RateLimited("quota", status_code=429, retry_after=60.0)
    async with limits.permit(1):
        assert clock.now == pytest.approx(60.0)


async def test_error_headers_update_the_mirror() -> None:
    """The x-ratelimit-* headers of a 429 count as a report: remaining 0 means wait for refill."""
    clock = FakeClock()
    limits = Limits(ServerPacing(), clock=clock, sleep=clock.sleep)
    with pytest.raises(RateLimited):
        async with limits.permit(1):
            raise RateLimited("slow down", status_code=429, headers=quota_headers((120, 0)))
    async with limits.permit(1):
        assert clock.now == pytest.approx(0.5, rel=1e-2)


async def test_the_reset_header_sets_the_refill_rate() -> None:
    """A bucket of 100 with 40 left that is full again in 30 s refills at 2 a second, whatever
    its window: the 41st attempt waits 0.5 s, not the 0.6 s a per-minute guess would give."""
    clock = FakeClock()
    limits = Limits(ServerPacing(), clock=clock, sleep=clock.sleep)
    report = {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "40",
        "x-ratelimit-reset-requests": "30s",
    }
    async with limits.permit(1) as permit:
        permit.record(tokens=1, headers=report)
    times = await start_times(limits, clock, 41)
    assert times[39] == 0.0
    assert times[40] == pytest.approx(30 / 59.5)  # half a unit of rounding: see Quota


def ending(error: Exception | None = None) -> Ending:
    """How an attempt ended, with the error's headers, as ``Limits`` reports it."""
    return Ending(headers=error.headers if isinstance(error, RateLimited) else {}, error=error)


def finish(aimd: AdaptiveConcurrency, ticket: Ticket, error: Exception | None = None) -> None:
    aimd.finished(ticket, ending(error), 0.0)


def start(aimd: AdaptiveConcurrency, n: int) -> list[Ticket]:
    tickets = [Ticket(1) for _ in range(n)]
    for ticket in tickets:
        assert aimd.wait(ticket, 0.0) == 0.0
        aimd.started(ticket, 0.0)
    return tickets


def dry() -> RateLimited:
    """A 429 whose headers say the request bucket is empty: evidence of a limit."""
    return RateLimited("429", status_code=429, headers=quota_headers((600, 0)))


def test_aimd_starts_wide_open_and_keeps_its_window_through_isolated_429s() -> None:
    """No slow start: the window is its maximum, and a few 429s among successes leave it be."""
    assert AdaptiveConcurrency().limit == 1024
    aimd = AdaptiveConcurrency(maximum=32)
    tickets = start(aimd, 32)
    assert aimd.wait(Ticket(1), 0.0) == math.inf
    for i, ticket in enumerate(tickets):
        finish(aimd, ticket, RateLimited("busy", status_code=429) if i % 3 == 0 else None)
    assert aimd.limit == 32 and aimd.decreases == 0


def test_aimd_halves_once_per_window_on_evidence_then_grows_by_one_per_window() -> None:
    """A burst of 429s reporting a dry bucket cuts the cap once; successes then add 1/limit."""
    aimd = AdaptiveConcurrency(initial=8, maximum=64)
    tickets = start(aimd, 8)
    for ticket in tickets[:3]:
        finish(aimd, ticket, dry())
    assert aimd.limit == 4 and aimd.decreases == 1
    for ticket in tickets[3:]:
        finish(aimd, ticket)
    # Congestion avoidance: +1/limit per success, so about +1 per window's worth (here 5).
    assert 5.0 < aimd.limit < 5.2


def test_429s_that_repeat_with_the_load_are_evidence_without_headers() -> None:
    """Twenty 429s in the last 30 answers, with no headers, mark that and every later 429 a
    limit's; 30 % at random never do."""
    noisy = Evidence()
    for i in range(1000):
        ending = Ending(error=RateLimited("busy", status_code=429) if i % 10 < 3 else None)
        assert noisy.judge(Ticket(1), ending) is not Signal.LIMIT
    loaded = Evidence()
    verdicts = [
        loaded.judge(Ticket(1), Ending(error=RateLimited("busy", status_code=429)))
        for _ in range(20)
    ]
    assert verdicts[:19] == [Signal.NOISE] * 19 and verdicts[19] is Signal.LIMIT
    loaded.judge(Ticket(1), Ending())
    assert loaded.judge(Ticket(1), Ending(error=RateLimited("x", status_code=429))) is Signal.LIMIT


def test_headers_that_report_room_make_a_429_noise() -> None:
    """A 429 whose headers show 500 requests left is not a quota (a concurrency cap, a hiccup)."""
    evidence = Evidence()
    roomy = RateLimited("busy", status_code=429, headers=quota_headers((600, 500)))
    assert evidence.judge(Ticket(1), ending(roomy)) is Signal.NOISE
    assert evidence.judge(Ticket(1), ending(dry())) is Signal.LIMIT


def test_build_limiter_shares_one_evidence_between_the_adaptive_limits() -> None:
    """The three adaptive limits judge each answer once, together."""
    limiter = build_limiter(adaptive=True)
    assert isinstance(limiter, Limits)
    pacing, learned, aimd = limiter.limits
    assert isinstance(pacing, ServerPacing) and isinstance(learned, LearnedRate)
    assert isinstance(aimd, AdaptiveConcurrency)
    assert pacing.evidence is learned.evidence is aimd.evidence


def test_aimd_never_grows_a_window_it_does_not_use_and_never_drops_below_minimum() -> None:
    """Successes at 2 in flight leave a cap of 8 alone; repeated 429s stop at the minimum."""
    aimd = AdaptiveConcurrency(initial=8, minimum=2)
    for _ in range(5):
        [ticket] = start(aimd, 1)
        finish(aimd, ticket)
    assert aimd.limit == 8
    for _ in range(6):
        [ticket] = start(aimd, 1)
        finish(aimd, ticket, dry())
    assert aimd.limit == 2


async def test_a_silent_limit_is_paced_at_a_learned_rate() -> None:
    """Against 429s with no headers that repeat with the load, attempts are spaced at the rate
    the server answered at, and a 429 of the paced ones slows the pace by 0.7, once."""
    clock = FakeClock()
    learned = LearnedRate()
    limits = Limits(learned, clock=clock, sleep=clock.sleep)
    for _ in range(4):  # 4 answers in the last 2 s
        async with limits.permit(1):
            pass
    for _ in range(20):
        with pytest.raises(RateLimited):
            async with limits.permit(1):
                raise RateLimited("busy", status_code=429, retry_after=1.0)
    assert learned.rate == 2.0  # 4 answers over 2 s
    times = await start_times(limits, clock, 3)
    assert times == pytest.approx([0.0, 0.5, 0.5 + 1 / 2.5])
    rate = learned.rate
    together = [Ticket(1), Ticket(1)]
    for ticket in together:
        learned.started(ticket, clock.now)
    for ticket in together:
        busy = RateLimited("busy", status_code=429, retry_after=1.0)
        learned.finished(ticket, Ending(error=busy), clock.now)
    assert learned.rate == pytest.approx(rate * 0.7) and learned.cuts == 1


def test_a_reported_limit_leaves_the_learned_rate_off() -> None:
    """429s that carry x-ratelimit-* headers are ServerPacing's to pace: LearnedRate stays off."""
    learned = LearnedRate()
    for _ in range(30):
        ticket = Ticket(1)
        learned.started(ticket, 0.0)
        learned.finished(ticket, ending(dry()), 0.0)
    assert learned.rate is None


def test_aimd_settings_are_checked() -> None:
    """An initial cap outside [minimum, maximum] or a decrease of 1 is refused."""
    with pytest.raises(ValueError, match="minimum <= initial"):
        AdaptiveConcurrency(initial=0.5)
    with pytest.raises(ValueError, match="decrease"):
        AdaptiveConcurrency(decrease=1.0)


async def test_a_full_window_waits_for_a_finish_not_a_timer() -> None:
    """With a cap of 2, a third attempt starts exactly when one of the first two ends."""
    clock = FakeClock()
    limits = Limits(AdaptiveConcurrency(initial=2, maximum=2), clock=clock, sleep=clock.sleep)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str) -> None:
        async with limits.permit(1):
            order.append(f"start {name}")
            await release.wait()
            order.append(f"end {name}")

    async with asyncio.TaskGroup() as group:
        for name in "abc":
            group.create_task(hold(name))
        await asyncio.sleep(0.01)
        assert order == ["start a", "start b"]
        release.set()
    assert order.index("start c") > order.index("end a")
    assert clock.sleeps == []


class ThrottledModel(Model):
    """A server stand-in that answers 429 whenever more than ``capacity`` calls are in flight."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_flight = 0
        self.refused = 0
        self.answered = 0

    @property
    def name(self) -> str:
        return "throttled"

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        if self.in_flight >= self.capacity:
            self.refused += 1
            raise RateLimited("too many requests in flight", status_code=429)
        self.in_flight += 1
        try:
            await asyncio.sleep(0.001)
        finally:
            self.in_flight -= 1
        self.answered += 1
        return Completion("ok", Usage(1, 1))


async def test_aimd_converges_near_an_unknown_concurrency_limit() -> None:
    """Against a server that takes 10 at a time and sends no headers, few requests are refused."""
    model = ThrottledModel(capacity=10)
    aimd = AdaptiveConcurrency()
    engine = Engine(
        model,
        concurrency=64,
        limiter=Limits(aimd),
        retry=RetryPolicy(retries=20, base_delay=0.0),
        sleep=NoWait(),
    )
    outcomes = await engine.run(Call(Request.text(f"q{i}")) for i in range(400))
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    assert model.refused <= 0.1 * model.answered, (model.refused, aimd)
    assert 5 <= aimd.limit <= 16, aimd


async def test_one_limiter_shared_by_two_engines_paces_their_sum() -> None:
    """Two engines sharing an rpm bucket and a concurrency cap stay within both together."""
    clock = FakeClock()
    limiter = Limits(
        Bucket.rpm(600), AdaptiveConcurrency(initial=3, maximum=3), clock=clock, sleep=clock.sleep
    )
    model = ScriptedModel()
    starts: list[float] = []

    def engine() -> Engine:
        return Engine(
            model,
            concurrency=8,
            limiter=limiter,
            clock=clock,
            observer=lambda e: (
                starts.append(clock.now) if type(e).__name__ == "CallStarted" else None
            ),
        )

    first, second = engine(), engine()
    async with asyncio.TaskGroup() as group:
        a = group.create_task(first.run(Call(Request.text(f"a{i}")) for i in range(15)))
        b = group.create_task(second.run(Call(Request.text(f"b{i}")) for i in range(15)))
    assert all(isinstance(o, Fulfilled) for o in [*a.result(), *b.result()])
    assert model.peak <= 3
    # 30 requests at 600/min with a burst of 10: the last may start no sooner than 2 s in.
    assert clock.now == pytest.approx(2.0)
    assert len(model.history) == 30


def test_build_limiter_assembles_only_what_was_asked_for() -> None:
    """No limits give Unlimited; --rpm, --tpm and adaptive add their limits in that order."""
    assert isinstance(build_limiter(), Unlimited)
    limiter = build_limiter(rpm=60, tpm=1000, adaptive=True)
    assert isinstance(limiter, Limits)
    kinds = [type(limit).__name__ for limit in limiter.limits]
    assert kinds == ["Bucket", "Bucket", "ServerPacing", "LearnedRate", "AdaptiveConcurrency"]


async def test_each_attempt_records_how_long_the_limiter_held_it() -> None:
    """At 60 requests a minute, three calls launched together are queued 0, 1 and 2 seconds."""
    clock = FakeClock()
    limiter = Limits(Bucket.rpm(60), clock=clock, sleep=clock.sleep)
    engine = Engine(ScriptedModel(), concurrency=3, limiter=limiter, clock=clock)
    outcomes = await engine.run(Call(Request.text(f"q{i}")) for i in range(3))
    queued = sorted(a.queued for o in outcomes for a in o.attempts)
    assert queued == pytest.approx([0.0, 1.0, 2.0])
    assert all(a.duration >= a.queued for o in outcomes for a in o.attempts)
