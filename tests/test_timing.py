"""Honest timing: time with the server apart from the limiter's hold, and speed-ups that fit."""

from __future__ import annotations

import asyncio

from fanwise import Call, Engine, Request
from fanwise.limits import Bucket, Limits
from fanwise.models.base import Completion, Usage
from fanwise.outcome import Attempt, Cancelled, Fulfilled, Rejected, ServerError
from fanwise.ui.plain import call_time, summary_line
from fanwise.workflow import Stats
from tests.scripted import ScriptedModel


class FakeClock:
    """A clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        self.now += seconds


def answered(service: float, queued: float = 0.0) -> Fulfilled[Completion]:
    attempt = Attempt(1, 0.0, service + queued, queued=queued)
    return Fulfilled(Completion("ok", Usage(1, 1)), service + queued, 0.0, (attempt,))


async def test_time_held_by_the_limiter_is_queue_time_not_service_time() -> None:
    """At 60 requests a minute, three calls queue 0, 1 and 2 s: 3 s queued, none of it service."""
    clock = FakeClock()
    limiter = Limits(Bucket.rpm(60), clock=clock, sleep=clock.sleep)
    engine = Engine(ScriptedModel(), concurrency=3, limiter=limiter, clock=clock)
    outcomes = await engine.run(Call(Request.text(f"q{i}")) for i in range(3))
    stats = Stats.of(outcomes, wall_time=2.0)
    assert stats.queue_time == 3.0 and stats.service_time == 0.0
    assert sum(o.latency for o in outcomes) == 3.0  # the old "sum of call times" counted it


def test_the_summary_line_shows_service_and_queue_time_apart() -> None:
    """A throttled run reads "service time 2.0 s (+ 52.0 s queued in fanwise's limiter)", and
    its speed-up divides the service time, not the waits, by the wall time."""
    outcomes = [answered(1.0, queued=26.0), answered(1.0, queued=26.0)]
    stats = Stats.of(outcomes, wall_time=27.0)
    line = summary_line(stats)
    assert "service time 2.0 s (+ 52.0 s queued in fanwise's limiter)" in line
    assert "0.1× faster" in line
    assert call_time(outcomes[0]) == "1.0 s, queued 26.0 s"


def test_a_run_answered_from_the_journal_claims_no_speed_up() -> None:
    """Every answer cached: no "0.0× faster", but the reason there is none."""
    cached = Fulfilled(Completion("ok", Usage(1, 1)), 0.0, 0.0, (), cached=True)
    stats = Stats.of([cached, cached], wall_time=0.01)
    assert stats.speedup is None and stats.sent == 0
    assert "every answer came from the journal" in summary_line(stats)
    assert "faster" not in summary_line(stats)


def test_a_resumed_run_counts_only_the_calls_it_sent() -> None:
    """Two calls from the journal and two sent at once for 1 s each in 1 s: 2.0×, not 4.0×."""
    cached = Fulfilled(Completion("ok", Usage(1, 1)), 0.0, 0.0, (), cached=True)
    stats = Stats.of([cached, cached, answered(1.0), answered(1.0)], wall_time=1.0)
    assert stats.sent == 2 and stats.speedup == 2.0


def test_an_aborted_run_claims_no_speed_up() -> None:
    """A fail-fast abort cancels the calls in flight: its wall time is not the work's."""
    failed = Rejected(ServerError("down"), 0.5, 0.0, (Attempt(1, 0.0, 0.5, {"kind": "server"}),))
    cancelled = Rejected(Cancelled("aborted"), 0.5, 0.0, (Attempt(1, 0.0, 0.5),))
    stats = Stats.of([failed, cancelled, cancelled, cancelled], wall_time=0.5)
    assert stats.aborted and stats.speedup is None
    assert "no speed-up: the run was aborted" in summary_line(stats)
    assert stats.to_dict()["speedup"] is None
