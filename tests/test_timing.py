"""Honest timing: service time apart from the limiter's hold; overlap stated as measured."""

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
    its overlap divides the service time, not the waits, by the wall time."""
    outcomes = [answered(1.0, queued=26.0), answered(1.0, queued=26.0)]
    stats = Stats.of(outcomes, wall_time=27.0)
    line = summary_line(stats)
    assert "service time 2.0 s (+ 52.0 s queued in fanwise's limiter)" in line
    assert " · 0.1 calls in flight on average · " in line  # the times are in the line already
    assert call_time(outcomes[0]) == "1.0 s, queued 26.0 s"


def test_a_run_answered_from_the_journal_claims_no_overlap() -> None:
    """Every answer cached: no "0.0 calls in flight", but the reason there is no figure."""
    cached = Fulfilled(Completion("ok", Usage(1, 1)), 0.0, 0.0, (), cached=True)
    stats = Stats.of([cached, cached], wall_time=0.01)
    assert stats.speedup is None and stats.overlap is None and stats.sent == 0
    assert "every answer came from the journal" in summary_line(stats)
    assert "faster" not in summary_line(stats)


def test_a_resumed_run_counts_only_the_calls_it_sent() -> None:
    """Two calls from the journal and two sent at once for 1 s each in 1 s: 2.0 in flight,
    not 4.0."""
    cached = Fulfilled(Completion("ok", Usage(1, 1)), 0.0, 0.0, (), cached=True)
    stats = Stats.of([cached, cached, answered(1.0), answered(1.0)], wall_time=1.0)
    assert stats.sent == 2 and stats.overlap == 2.0


def test_an_aborted_run_claims_no_figure() -> None:
    """A fail-fast abort cancels the calls in flight: its wall time is not the work's."""
    failed = Rejected(ServerError("down"), 0.5, 0.0, (Attempt(1, 0.0, 0.5, {"kind": "server"}),))
    cancelled = Rejected(Cancelled("aborted"), 0.5, 0.0, (Attempt(1, 0.0, 0.5),))
    stats = Stats.of([failed, cancelled, cancelled, cancelled], wall_time=0.5)
    assert stats.aborted and stats.speedup is None and stats.overlap is None
    assert "no overlap figure: the run was aborted" in summary_line(stats)
    assert stats.to_dict()["speedup"] is None and stats.to_dict()["overlap"] is None


def served(start: float, end: float, tokens: int = 10) -> Fulfilled[Completion]:
    """An answer sent at ``start`` and back at ``end``, ``tokens`` long."""
    attempt = Attempt(1, start, end - start)
    return Fulfilled(Completion("ok", Usage(5, tokens)), end - start, start, (attempt,))


def test_a_server_that_takes_one_request_at_a_time_is_not_called_faster() -> None:
    """Four alike calls sent at once and answered at 1, 2, 3 and 4 s: the overlap, 2.5, is
    stated as what it is, and no speed-up is claimed (the server may have queued them)."""
    stats = Stats.of([served(0.0, float(end)) for end in (1, 2, 3, 4)], wall_time=4.0)
    assert stats.overlap == 2.5 and stats.speedup is None
    assert stats.speedup_text() == "2.5 calls in flight on average: 10.0 s of calls in 4.0 s"
    assert stats.to_dict()["overlap"] == 2.5 and stats.to_dict()["speedup"] is None


def test_a_server_that_answers_in_parallel_is_not_called_in_turn() -> None:
    """Six 1.0 s calls answered together in 1 s (a parallel server, the offline model's
    kind): the overlap is all six, and nothing says the server took them in turn."""
    stats = Stats.of([served(0.0, 1.0) for _ in range(6)], wall_time=1.0)
    assert stats.overlap == 6.0
    text = stats.speedup_text()
    assert text == "6.0 calls in flight on average: 6.0 s of calls in 1.0 s"
    assert "in turn" not in text and "one at a time" not in text and "faster" not in text


def test_answers_of_different_lengths_are_stated_as_measured() -> None:
    """1 s and 10 s answers side by side in 10 s: an overlap of 1.1, with no guess from the
    answers' lengths about how the server worked."""
    stats = Stats.of([served(0.0, 1.0, tokens=10), served(0.0, 10.0, tokens=100)], wall_time=10.0)
    assert stats.overlap == 1.1 and stats.speedup is None


def test_calls_sent_together_to_a_server_with_no_latency_are_not_one_at_a_time() -> None:
    """Four calls of a few milliseconds in 3 ms: the figure says so in ms, never "the calls
    went out one at a time"."""
    stats = Stats.of([served(0.0, 0.002) for _ in range(4)], wall_time=0.003)
    text = stats.speedup_text()
    assert text == "2.7 calls in flight on average: 8 ms of calls in 3 ms"


def test_no_figure_for_one_call_or_when_every_call_failed() -> None:
    """One call has nothing to overlap; calls that all failed show none, not 0.0."""
    one = Stats.of([served(0.0, 1.0)], wall_time=1.0)
    assert one.speedup is None and one.speedup_text() == "no overlap figure: one call was sent"
    failed = Rejected(ServerError("down"), 0.5, 0.0, (Attempt(1, 0.0, 0.5, {"kind": "server"}),))
    none = Stats.of([failed, failed], wall_time=0.5)
    assert none.speedup is None
    assert none.speedup_text() == "no overlap figure: no call was answered"
    assert Stats.of([], wall_time=0.0).speedup is None


def test_calls_sent_one_at_a_time_overlap_once() -> None:
    """-c 1 under a load that slows some answers: nothing overlapped, an overlap of 1.0."""
    ends = [(0.0, 1.0), (1.0, 5.0), (5.0, 9.0), (9.0, 13.0)]
    stats = Stats.of([served(start, end) for start, end in ends], wall_time=13.0)
    assert stats.overlap == 1.0 and stats.speedup is None
    assert "faster" not in stats.speedup_text()
