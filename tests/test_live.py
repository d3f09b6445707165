"""The live view: its state per event, what a frame shows, its bounded refresh, when it is used."""

from __future__ import annotations

import io

from rich.console import Console

from fanwise import Completion, Fulfilled, Plan, Rejected, Usage
from fanwise.events import (
    CallRetrying,
    CallSettled,
    CallStarted,
    Event,
    PhaseFinished,
    PhaseStarted,
)
from fanwise.outcome import Attempt, RateLimited, ServerError
from fanwise.ui.console import LiveConsole, PlainConsole, choose_display, summary_table
from fanwise.ui.live import render
from fanwise.ui.progress import Progress
from fanwise.workflow import Answer, Stats, Status, WorkflowResult

RATE_LIMITED = {"kind": "rate_limited", "message": "slow down"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def ok(tokens: int = 15, latency: float = 1.0, cached: bool = False) -> Fulfilled[Completion]:
    completion = Completion("answer", Usage(tokens - 5, 5), model="gpt-5")
    return Fulfilled(
        completion, latency, 0.0, () if cached else (Attempt(1, 0.0, latency),), cached
    )


def failed(message: str = "boom") -> Rejected:
    return Rejected(ServerError(message), 2.0, 0.0, (Attempt(1, 0.0, 2.0, {"kind": "server"}),))


def retried_run() -> list[Event]:
    """Three calls: one retried then answered, one answered, one failed; one from the journal."""
    return [
        PhaseStarted("research", 4, 0.0),
        CallStarted(0, "k0", "sights?", 1, 0.0),
        CallStarted(1, "k1", "transport?", 1, 0.0),
        CallStarted(2, "k2", "culture?", 1, 0.0),
        CallRetrying(0, "k0", "sights?", 1, RATE_LIMITED, 0.5, 0.2),
    ]


def draw(progress: Progress, now: float) -> str:
    """One frame as plain text, as a 120-column terminal would show it."""
    text = io.StringIO()
    Console(file=text, width=120, color_system=None).print(render(progress, now, 120))
    return text.getvalue()


def test_progress_counts_follow_the_events() -> None:
    """Running, retrying, settled, failed, cached and tokens move with each event."""
    progress = Progress()
    for event in retried_run():
        progress.apply(event)
    assert (progress.running, progress.retrying, progress.queued) == (2, 1, 1)
    assert progress.rows[0].state == "retrying" and progress.rows[0].resume_at == 0.7
    progress.apply(CallStarted(0, "k0", "sights?", 2, 0.7))
    assert (progress.running, progress.retrying) == (3, 0)
    progress.apply(CallSettled(0, "k0", "sights?", ok(tokens=20), 1.5))
    progress.apply(CallSettled(2, "k2", "culture?", failed(), 2.0))
    progress.apply(CallSettled(3, "k3", "cached?", ok(cached=True), 2.0))
    assert (progress.fulfilled, progress.rejected, progress.cached) == (2, 1, 1)
    assert (progress.running, progress.retries, progress.tokens) == (1, 1, 20)
    assert progress.rows[2].state == "failed" and progress.rows[2].error == "server: boom"
    assert progress.throughput(2.0) == 1.5 and progress.eta(2.0) == 1 / 1.5


def test_a_frame_shows_each_call_with_its_state() -> None:
    """A small run's frame has a row per call: question, retry wait, tries, tokens, then the bar."""
    clock = FakeClock()
    console = Console(file=io.StringIO(), width=120, color_system=None)
    live = LiveConsole(console, clock=clock, refresh_per_second=1000)
    for event in retried_run():
        clock.now = event.at
        live(event)
    live(CallSettled(1, "k1", "transport?", ok(tokens=1234), 0.3))
    frame = draw(live.progress, 0.3)
    assert "sights?" in frame and "retrying in 0.4 s (rate_limited)" in frame
    assert "transport?" in frame and "1,234" in frame and "done" in frame
    assert "1/4" in frame and "1 running" in frame and "1 retrying" in frame
    assert "1 waiting" in frame and "1,234 tokens" in frame
    assert "1 more, waiting for a free slot" in frame, "the call without a slot has a row too"


def test_a_big_run_shows_the_bar_and_the_latest_failures_only() -> None:
    """With 500 calls no row per call is kept or drawn: the bar and the last five failures."""
    clock = FakeClock()
    console = Console(file=io.StringIO(), width=120, color_system=None)
    live = LiveConsole(console, clock=clock, refresh_per_second=1000)
    live(PhaseStarted("batch", 500, 0.0))
    for index in range(500):
        live(CallStarted(index, f"k{index}", f"question {index}", 1, 0.0))
    for index in range(490):
        outcome = failed(f"error {index}") if index % 7 == 0 else ok()
        live(CallSettled(index, f"k{index}", f"question {index}", outcome, 1.0))
    assert len(live.progress.rows) == 10, "only the calls in flight are kept"
    frame = draw(live.progress, 1.0)
    assert "latest failures:" in frame and "question 483: server: error 483" in frame
    assert "question 448" not in frame and "question 489" not in frame
    assert "490/500" in frame and "70 failed" in frame and "10 running" in frame


def test_frames_are_drawn_at_a_bounded_rate() -> None:
    """A thousand events in one second make at most about ten frames at 10 frames a second."""
    clock = FakeClock()
    live = LiveConsole(Console(file=io.StringIO(), width=100), clock=clock, refresh_per_second=10)
    live(PhaseStarted("research", 1000, 0.0))
    for index in range(1000):
        clock.now = index / 1000
        live(CallStarted(index, f"k{index}", "q", 1, clock.now))
    assert 9 <= live.frames <= 11


def test_the_synthesis_gets_plain_lines_after_the_live_view() -> None:
    """The live view stops when the synthesis starts, which then prints its plain lines."""
    clock = FakeClock()
    out = io.StringIO()
    live = LiveConsole(Console(file=out, width=100, color_system=None), clock=clock)
    live(PhaseStarted("research", 1, 0.0))
    live(CallStarted(0, "k", "q", 1, 0.0))
    live(CallSettled(0, "k", "q", ok(), 1.0))
    live(PhaseFinished("research", 1.0))
    assert live.live is None
    live(PhaseStarted("synthesis", 1, 1.0))
    live(CallStarted(1, "s", "guide for Kyoto", 1, 1.0))
    live(CallSettled(1, "s", "guide for Kyoto", ok(latency=0.5), 1.5))
    assert out.getvalue().index("🧩 Synthesizing…") < out.getvalue().index(
        "✅ Synthesized: guide for Kyoto (0.5 s)"
    )
    assert live.live is None


def run_live(environ: dict[str, str]) -> str:
    stream = Terminal()
    display = choose_display(stream, clock=FakeClock(), environ=environ)
    assert isinstance(display, LiveConsole)
    display.console.width = 100  # a StringIO has no size of its own
    for event in retried_run():
        display(event)
    display(PhaseFinished("research", 1.0))
    return stream.getvalue()


def test_no_color_turns_the_colours_off() -> None:
    """With NO_COLOR set the live view still draws, but without a single colour code."""
    coloured, plain = run_live({"TERM": "xterm"}), run_live({"TERM": "xterm", "NO_COLOR": "1"})
    assert "\x1b[36m" in coloured, "running is cyan on a colour terminal"
    assert "sights?" in plain and "\x1b[36m" not in plain and "\x1b[33m" not in plain


def test_plain_lines_off_a_terminal_or_when_asked() -> None:
    """A pipe, --plain and TERM=dumb all get the plain lines; a terminal gets the live view."""
    tty = {"TERM": "xterm"}
    assert isinstance(choose_display(io.StringIO(), environ=tty), PlainConsole)
    assert isinstance(choose_display(Terminal(), plain=True, environ=tty), PlainConsole)
    assert isinstance(choose_display(Terminal(), environ={"TERM": "dumb"}), PlainConsole)
    assert isinstance(choose_display(Terminal(), environ=tty), LiveConsole)


def test_plain_lines_keep_the_seed_format() -> None:
    """The plain lines read exactly as the seed's, with no escape codes."""
    stream = io.StringIO()
    console = PlainConsole(stream)
    console(CallStarted(0, "k", "sights?", 1, 0.0))
    console(CallSettled(0, "k", "sights?", ok(latency=1.23), 1.2))
    console(CallSettled(1, "k", "culture?", failed("down"), 2.0))
    assert stream.getvalue().splitlines() == [
        "🔄 Asking: sights?",
        "✅ Answered: sights? (1.2 s)",
        "❌ Failed: culture?: server: down",
    ]


def test_the_summary_table_gives_the_reasons_for_each_rejection() -> None:
    """The end-of-run table names each failed question with its error kind, and the cost."""
    plan = Plan("Kyoto", ("sights?", "culture?"))
    limited = Rejected(RateLimited("too many requests"), 3.0, 0.0, ())
    result = WorkflowResult.from_answers(
        plan,
        (Answer("sights?", ok()), Answer("culture?", limited)),
        None,
        Status.NO_RESULT,
        Stats(1, 1, 3.0, 4.0, 0.0, Usage(10, 5), service_time=4.0, sent=2),
    )
    text = io.StringIO()
    Console(file=text, width=100, color_system=None).print(summary_table(result, cost=0.0123))
    out = text.getvalue()
    assert "culture?: rate_limited: too many requests" in out
    assert "1.3 calls in flight on average" in out
    assert "faster" not in out and "15 (10 in, 5 out)" in out and "$0.0123" in out


def test_a_narrow_terminal_shortens_questions_not_numbers() -> None:
    """At 80 columns a long question and a long error give way; elapsed and tokens stay whole."""
    progress = Progress()
    progress.apply(PhaseStarted("research", 2, 0.0))
    question = "What should a visitor know about etiquette in Kyoto in spring, and why? " * 2
    progress.apply(CallStarted(0, "k0", question, 1, 0.0))
    progress.apply(CallSettled(0, "k0", question, ok(tokens=12345, latency=3.25), 3.3))
    progress.apply(CallStarted(1, "k1", question, 1, 0.0))
    progress.apply(CallSettled(1, "k1", question, failed("x" * 200), 3.3))
    text = io.StringIO()
    Console(file=text, width=80, color_system=None).print(render(progress, 3.3, 80))
    lines = text.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[1].rstrip().endswith("3.2 s      1   12,345") and "…" in lines[1]
    assert "failed: server: xxx" in lines[2] and lines[2].rstrip().endswith("2.0 s      1")
