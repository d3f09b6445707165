"""The seed's plain progress lines: what a log, a pipe or ``--plain`` shows on stderr.

One line per event, in the order things happen, with no colour codes, so the output reads the
same in a terminal, a pipe and a CI log.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import IO, Any

from fanwise.events import (
    BatchProgress,
    CallRetrying,
    CallSettled,
    CallStarted,
    Event,
    PhaseStarted,
    StageFinished,
    StageStarted,
)
from fanwise.outcome import Fulfilled, Rejected
from fanwise.prices import shown_cost
from fanwise.stages.research import Stats
from fanwise.stages.result import WorkflowResult
from fanwise.ui.words import cli_words


def shorten(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class PlainConsole:
    """An event observer that prints ``🔄 Asking`` / ``✅ Answered`` / ``❌ Failed`` lines."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.phase = "research"

    def __call__(self, event: Event) -> None:
        line = self.line(event)
        if line is not None:
            print(line, file=self.stream, flush=True)

    @contextlib.asynccontextmanager
    async def showing(self) -> AsyncIterator[None]:
        """Nothing to set up or tear down: each line is printed as its event arrives."""
        yield

    def summary(self, result: WorkflowResult, cost: float | str | None = None) -> None:
        print(summary_line(result.stats, cost), file=self.stream, flush=True)

    def line(self, event: Event) -> str | None:
        match event:
            case PhaseStarted(phase=phase):
                self.phase = phase
                return "🧩 Synthesizing…" if phase == "synthesis" else None
            case CallStarted() if self.phase == "synthesis":
                return None
            case CallSettled(label=label, outcome=Fulfilled() as outcome) if (
                self.phase == "synthesis"
            ):
                cut = cut_note(outcome)
                return f"✅ Synthesized: {shorten(label)} ({outcome.latency:.1f} s){cut}"
            case CallStarted(attempt=1, label=label):
                return f"🔄 Asking: {shorten(label)}"
            case CallRetrying(label=label, attempt=attempt, error=error, wait=wait):
                return (
                    f"⏳ Retrying: {shorten(label)} in {wait:.1f} s "
                    f"(attempt {attempt} failed: {error['kind']}: {shorten(error['message'], 120)})"
                )
            case CallSettled(label=label, outcome=Fulfilled() as outcome):
                if outcome.cached:
                    return f"♻️  Cached: {shorten(label)}"
                tries = f", {len(outcome.attempts)} attempts" if len(outcome.attempts) > 1 else ""
                cut = cut_note(outcome)
                return f"✅ Answered: {shorten(label)} ({call_time(outcome)}{tries}){cut}"
            case CallSettled(label=label, outcome=outcome):
                assert not isinstance(outcome, Fulfilled)
                return (
                    f"❌ Failed: {shorten(label)}: {outcome.kind}: "
                    f"{shorten(cli_words(outcome.message), 200)}"
                )
            case StageStarted() | StageFinished():
                return stage_line(event)
            case BatchProgress(batch_id=batch_id, status=status, total=total):
                failed = f", {event.failed} failed" if event.failed else ""
                done = event.completed + event.failed
                return f"📦 Batch {batch_id}: {status}, {done}/{total} done{failed}"
        return None


def cut_note(outcome: Fulfilled[Any]) -> str:
    """`` ✂ cut at its token cap`` for an answer the cap cut short (``Completion.truncated``)."""
    return " ✂ cut at its token cap" if getattr(outcome.value, "truncated", False) else ""


def call_time(outcome: Fulfilled[Any] | Rejected) -> str:
    """A call's time with the server, and apart from it the limiter's hold: "1.0 s, queued 26 s"
    (an outcome without attempts, built by hand, shows its latency)."""
    if not outcome.attempts:
        return f"{outcome.latency:.1f} s"
    queued = outcome.queue_time
    held = f", queued {queued:.1f} s" if queued >= 0.05 else ""
    return f"{outcome.service_time:.1f} s{held}"


STAGE_ICONS = {
    "fulfilled": "✅",
    "partial": "🟡",
    "failed": "❌",
    "skipped": "⏭",
    "not_chosen": "·",
}


def stage_line(event: StageStarted | StageFinished) -> str:
    """``▶ stage districts: map ×5`` as a stage starts, ``✅ districts fulfilled`` as it ends."""
    if isinstance(event, StageStarted):
        width = f" ×{event.total}" if event.kind in ("questions", "map", "vote") else ""
        return f"▶ stage {event.name}: {event.kind}{width}"
    note = f": {shorten(event.note, 200)}" if event.note else ""
    return f"{STAGE_ICONS.get(event.status, '?')} {event.name} {event.status}{note}"


def summary_line(stats: Stats, cost: float | str | None = None) -> str:
    """Counts, wall time, the server's time apart from the limiter's, and the speed-up; the cost
    in dollars, or ``cost unknown for MODEL (...)`` (``prices.cost_text``)."""
    tokens = f"{stats.usage.total_tokens:,} tokens"
    price = f" · {shown_cost(cost)}" if cost is not None else ""
    cut = f" ({stats.truncated} cut at their token cap)" if stats.truncated else ""
    unknown = stats.usage.unknown
    if unknown:  # a server left usage out: the counts are a floor, the cost is not known
        calls = "1 call" if unknown == 1 else f"{unknown} calls"
        tokens += f" + usage unknown for {calls}"
        price += " + unknown" if cost is not None else ""
    return (
        f"📊 {stats.fulfilled} fulfilled{cut}, {stats.rejected} rejected · research wall time "
        f"{stats.wall_time:.1f} s · {service_text(stats)} · {stats.speedup_text(times=False)} · "
        f"{tokens}{price}"
    )


def service_text(stats: Stats) -> str:
    """Time with the server, and apart from it the time fanwise's own limiter held calls."""
    queued = stats.queue_time
    held = f" (+ {queued:.1f} s queued in fanwise's limiter)" if queued >= 0.05 else ""
    return f"service time {stats.service_time:.1f} s{held}"
