"""The ASCII timeline and the rows it shares with the HTML report, on a fixed set of outcomes."""

from __future__ import annotations

from fanwise import Completion, Fulfilled, Rejected
from fanwise.outcome import Attempt, RateLimited
from fanwise.ui.timeline import TimelineRow, ascii_timeline, nice_step

RATE_LIMITED = {"kind": "rate_limited", "message": "429"}

ROWS = [
    TimelineRow(
        0,
        "What are the top attractions to visit in Kyoto?",
        Fulfilled(
            Completion("a"),
            2.1,
            0.0,
            (Attempt(1, 0.0, 0.4, RATE_LIMITED), Attempt(2, 0.9, 1.2, None, 0.5)),
        ),
    ),
    TimelineRow(1, "transport?", Fulfilled(Completion("b"), 0.9, 0.0, (Attempt(1, 0.0, 0.9),))),
    TimelineRow(
        2,
        "culture?",
        Rejected(
            RateLimited("429"),
            1.5,
            0.0,
            (
                Attempt(1, 0.0, 0.2, RATE_LIMITED),
                Attempt(2, 0.5, 0.2, RATE_LIMITED),
                Attempt(3, 1.3, 0.2, RATE_LIMITED),
            ),
        ),
    ),
    TimelineRow(
        3,
        "guide for Kyoto",
        Fulfilled(Completion("g"), 1.0, 2.1, (Attempt(1, 2.1, 1.0),)),
        synthesis=True,
    ),
]

EXPECTED = """\
                                0 s      1 s      2 s      3 s
  1 What are the top attracti… |xxxx----###########         | ok 2.1 s, 2 tries
  2 transport?                 |#########                   | ok 0.90 s
  3 culture?                   |xx--xxx----xxx              | rate_limited 1.5 s, 3 tries
  S guide for Kyoto            |                  ##########| ok 1.0 s
legend: # attempt   x failed attempt   - waiting to retry   . held by the rate limiter   \
c from the journal (cached)
"""


def test_rows_share_one_axis_with_retries_and_waits_marked() -> None:
    """Each call is one row on a shared axis; failed attempts, waits and the synthesis show."""
    assert ascii_timeline(ROWS, width=90) == EXPECTED


def test_segments_put_the_wait_between_two_attempts() -> None:
    """A retried call yields failed attempt, wait, attempt, with the error in the note."""
    kinds = [(s.kind, s.start, s.end) for s in ROWS[0].segments()]
    assert kinds == [("failed", 0.0, 0.4), ("wait", 0.4, 0.9), ("ok", 0.9, 2.1)]
    assert ROWS[0].segments()[0].note == "attempt 1: rate_limited: 429"


def test_time_held_by_the_rate_limiter_is_its_own_segment() -> None:
    """An attempt's queued seconds come before its request, drawn as '.' and not as the call."""
    row = TimelineRow(
        0, "q", Fulfilled(Completion("x"), 1.0, 0.0, (Attempt(1, 0.0, 1.0, None, 0.0, 0.4),))
    )
    assert [(s.kind, s.start, s.end) for s in row.segments()] == [
        ("queued", 0.0, 0.4),
        ("ok", 0.4, 1.0),
    ]
    assert "|....######| ok 1.0 s" in ascii_timeline([row], width=10 + 14)


def test_a_cached_call_is_a_point_and_says_so() -> None:
    """A call answered from the journal made no attempt: one 'c' mark and 'cached'."""
    cached = TimelineRow(0, "q", Fulfilled(Completion("x"), 0.0, 0.5, (), cached=True))
    other = TimelineRow(1, "r", Fulfilled(Completion("y"), 1.0, 0.0, (Attempt(1, 0.0, 1.0),)))
    text = ascii_timeline([cached, other], width=60)
    _, bar, result = text.splitlines()[1].split("|")
    assert bar.strip() == "c" and result == " cached"


def test_a_rejection_without_attempts_still_gets_a_bar() -> None:
    """A call cut off before any attempt was recorded still shows where it ran, as failed."""
    row = TimelineRow(0, "q", Rejected(RateLimited("x"), 1.0, 0.0, ()))
    assert [s.kind for s in row.segments()] == ["failed"]
    assert "|xxxxxxxxxx" in ascii_timeline([row], width=40)


def test_long_runs_are_cut_with_a_note() -> None:
    """Past ``max_rows`` the rest are counted, not drawn."""
    rows = [
        TimelineRow(
            n, f"q{n}", Fulfilled(Completion(""), 1.0, n * 0.1, (Attempt(1, n * 0.1, 1.0),))
        )
        for n in range(100)
    ]
    lines = ascii_timeline(rows, max_rows=10).splitlines()
    assert len(lines) == 1 + 10 + 2
    assert lines[-2] == "… 90 more calls not shown (of 100)"


def test_tick_steps_are_round_numbers() -> None:
    """Ticks fall on 1, 2 or 5 times a power of ten."""
    assert [nice_step(x) for x in (3.2, 0.4, 47.0, 0.0)] == [1.0, 0.1, 10.0, 1.0]
