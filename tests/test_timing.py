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
    its speed-up divides the service time, not the waits, by the wall time: none."""
    outcomes = [answered(1.0, queued=26.0), answered(1.0, queued=26.0)]
    stats = Stats.of(outcomes, wall_time=27.0)
    line = summary_line(stats)
    assert "service time 2.0 s (+ 52.0 s queued in fanwise's limiter)" in line
    assert "no faster than one after another (the calls went out one at a time)" in line
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


def served(start: float, end: float, tokens: int = 10) -> Fulfilled[Completion]:
    """An answer sent at ``start`` and back at ``end``, ``tokens`` long."""
    attempt = Attempt(1, start, end - start)
    return Fulfilled(Completion("ok", Usage(5, tokens)), end - start, start, (attempt,))


def test_a_server_that_takes_one_request_at_a_time_gives_no_speed_up() -> None:
    """Four alike calls sent at once and answered at 1, 2, 3 and 4 s: they overlapped 2.5x,
    but one after another would also have taken 4 s, so no speed-up is claimed."""
    stats = Stats.of([served(0.0, float(end)) for end in (1, 2, 3, 4)], wall_time=4.0)
    assert stats.overlap == 2.5 and stats.speedup == 1.0
    text = stats.speedup_text()
    assert "faster than one after another" not in text.replace("no faster", "")
    assert "2.5 calls out at once on average" in text
    assert stats.to_dict()["overlap"] == 2.5 and stats.to_dict()["speedup"] == 1.0


def test_a_server_that_answers_in_parallel_gives_the_speed_up_measured() -> None:
    """Four calls of 1 s answered together in 1 s: 4.0x faster, the overlap itself."""
    stats = Stats.of([served(0.0, 1.0) for _ in range(4)], wall_time=1.0)
    assert stats.speedup == 4.0
    assert stats.speedup_text() == "4.0× faster than one after another"


def test_longer_answers_are_not_mistaken_for_waiting() -> None:
    """In parallel, an answer ten times as long takes ten times as long: its time counts whole
    (the estimate goes by tokens), so 1 s + 10 s in 10 s is 1.1x, not the 0.2x a cap at the
    fastest answer's time would give."""
    stats = Stats.of([served(0.0, 1.0, tokens=10), served(0.0, 10.0, tokens=100)], wall_time=10.0)
    assert stats.speedup == 1.1


def test_no_speed_up_for_one_call_or_when_every_call_failed() -> None:
    """One call has nothing to be faster than; calls that all failed show none, not 0.0x."""
    one = Stats.of([served(0.0, 1.0)], wall_time=1.0)
    assert one.speedup is None and one.speedup_text() == "no speed-up: one call was sent"
    failed = Rejected(ServerError("down"), 0.5, 0.0, (Attempt(1, 0.0, 0.5, {"kind": "server"}),))
    none = Stats.of([failed, failed], wall_time=0.5)
    assert none.speedup is None and none.speedup_text() == "no speed-up: no call was answered"
    assert Stats.of([], wall_time=0.0).speedup is None


def test_a_slow_first_answer_from_a_one_at_a_time_server_is_not_a_speed_up() -> None:
    """llama.cpp's server, measured: three alike answers back at 1.6, 2.5 and 3.3 s (the first
    slower: nothing of its prompt was cached yet). Capping each by the first answer's rate
    would claim 1.5x; the timings fit a server that answers one at a time, so none is claimed."""
    stats = Stats.of([served(0.0, end, tokens=32) for end in (1.6, 2.5, 3.3)], wall_time=3.3)
    assert stats.speedup is not None and stats.speedup <= 1.0
    assert "no faster than one after another" in stats.speedup_text()


def test_a_server_that_runs_two_at_a_time_is_credited_with_two() -> None:
    """Four alike calls, two at a time: back at 1, 1, 2 and 2 s. The overlap says 3.0x; the
    speed-up, each call capped at the fastest rate, 2.0x."""
    stats = Stats.of([served(0.0, end) for end in (1.0, 1.0, 2.0, 2.0)], wall_time=2.0)
    assert stats.overlap == 3.0 and stats.speedup == 2.0


def test_calls_sent_one_at_a_time_count_whole() -> None:
    """-c 1 under a load that slows some answers: nothing overlapped, so each call's time counts
    whole and the speed-up is 1.0, not the 0.3 a cap at the fastest answer's rate would give."""
    ends = [(0.0, 1.0), (1.0, 5.0), (5.0, 9.0), (9.0, 13.0)]
    stats = Stats.of([served(start, end) for start, end in ends], wall_time=13.0)
    assert stats.speedup == 1.0 and stats.overlap == 1.0


def test_a_very_slow_first_answer_still_claims_no_speed_up() -> None:
    """llama.cpp's server on a loaded machine, measured: three alike answers back at 3.9, 5.2
    and 6.6 s. Each call alone fits these times about as well as a queue; the queue, which
    claims less, is believed: no speed-up, not the 1.76x the fastest answer's rate gave."""
    stats = Stats.of([served(0.0, end, tokens=64) for end in (3.9, 5.2, 6.6)], wall_time=6.6)
    assert stats.speedup is not None and stats.speedup < 1.25


def test_six_answers_after_a_slow_first_one_claim_no_speed_up() -> None:
    """The same server with six questions: 3.9 s, then 1.3 s each. The more answers, the
    further the fastest answer's rate is from the queue's; the time between answers is not."""
    ends = (3.9, 5.2, 6.5, 7.8, 9.1, 10.4)
    stats = Stats.of([served(0.0, end, tokens=64) for end in ends], wall_time=10.4)
    assert stats.speedup is not None and stats.speedup < 1.25
