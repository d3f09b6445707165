"""Every call of a run on one time axis: the rows the HTML report and the ASCII timeline draw.

A row is one call and its outcome; its segments are the attempts (ok or failed) and the waits
between them, in seconds on the engine's clock. ``ascii_timeline`` draws them in a terminal, so the
overlap of the calls can be seen without a browser::

                          0 s       1 s       2 s
      1 sights?          |####x---####        | ok 1.2 s, 2 tries
      2 transport?       |#######             | ok 0.7 s
      S guide for Kyoto  |             #######| ok 0.7 s
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fanwise.outcome import Fulfilled, Rejected
from fanwise.stages.result import WorkflowResult
from fanwise.ui.plain import shorten

SegmentKind = Literal["ok", "failed", "wait", "queued", "cached"]
GLYPHS: dict[SegmentKind, str] = {
    "wait": "-",
    "queued": ".",
    "ok": "#",
    "cached": "c",
    "failed": "x",
}
LEGEND = (
    "# attempt   x failed attempt   - waiting to retry   . held by the rate limiter   "
    "c from the journal (cached)"
)


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    start: float
    end: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One call: ``index`` counts from 0; the synthesis row has ``synthesis=True``."""

    index: int
    label: str
    outcome: Fulfilled[Any] | Rejected
    synthesis: bool = False

    @property
    def start(self) -> float:
        return self.outcome.started

    @property
    def end(self) -> float:
        return self.outcome.started + self.outcome.latency

    @property
    def tries(self) -> int:
        return len(self.outcome.attempts)

    def result(self) -> str:
        """``ok 1.2 s, 2 tries``, ``cached`` or ``timeout 3.0 s, 4 tries``."""
        outcome = self.outcome
        if isinstance(outcome, Fulfilled) and outcome.cached:
            return "cached"
        status = "ok" if isinstance(outcome, Fulfilled) else str(outcome.kind)
        tries = f", {self.tries} tries" if self.tries > 1 else ""
        took = f"{outcome.latency:.2f}" if outcome.latency < 1 else f"{outcome.latency:.1f}"
        return f"{status} {took} s{tries}"

    def segments(self) -> list[Segment]:
        """The attempts in order, with the wait before each retry as its own segment."""
        outcome = self.outcome
        if isinstance(outcome, Fulfilled) and outcome.cached:
            return [Segment("cached", outcome.started, outcome.started)]
        if not outcome.attempts:
            kind: SegmentKind = "ok" if isinstance(outcome, Fulfilled) else "failed"
            return [Segment(kind, self.start, self.end)]
        segments: list[Segment] = []
        previous_end: float | None = None
        for attempt in outcome.attempts:
            if previous_end is not None and attempt.started > previous_end:
                segments.append(Segment("wait", previous_end, attempt.started))
            end = attempt.started + attempt.duration
            sent = attempt.started + min(attempt.queued, attempt.duration)
            name = f"attempt {attempt.number}"
            if sent > attempt.started:
                segments.append(Segment("queued", attempt.started, sent, f"{name}: rate limiter"))
            if attempt.error is None:
                segments.append(Segment("ok", sent, end, name))
            else:
                why = f"{attempt.error.get('kind', 'error')}: {attempt.error.get('message', '')}"
                segments.append(Segment("failed", sent, end, f"{name}: {why}"))
            previous_end = end
        return segments


def rows_of(result: WorkflowResult) -> list[TimelineRow]:
    """Every research call of a workflow, then its synthesis (when one was made)."""
    rows = [TimelineRow(n, a.question, a.outcome) for n, a in enumerate(result.answers)]
    if result.synthesis is not None:
        label = f"{result.workflow.title} for {result.workflow.topic}"
        rows.append(TimelineRow(len(rows), label, result.synthesis, synthesis=True))
    return rows


def span(rows: Iterable[TimelineRow]) -> tuple[float, float]:
    """The time axis that holds every row: (first start, last end)."""
    rows = list(rows)
    if not rows:
        return 0.0, 0.0
    return min(r.start for r in rows), max(r.end for r in rows)


def nice_step(length: float, ticks: int = 5) -> float:
    """A round tick spacing (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks."""
    if length <= 0:
        return 1.0
    raw = length / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{decimals}f} s"


def ascii_timeline(rows: Sequence[TimelineRow], *, width: int = 100, max_rows: int = 60) -> str:
    """The rows as text bars on one shared axis, with a legend; at most ``max_rows`` rows."""
    if not rows:
        return "(no calls)\n"
    origin, last = span(rows)
    shown = list(rows[:max_rows])
    labels = [f"{'S' if r.synthesis else r.index + 1:>3} {shorten(r.label, 26)}" for r in shown]
    results = [r.result() for r in shown]
    label_width = max(len(label) for label in labels) + 1
    result_width = max(len(result) for result in results) + 2
    columns = max(10, width - label_width - result_width - 2)
    scale = columns / (last - origin) if last > origin else 0.0

    lines = [" " * (label_width + 1) + _axis(last - origin, columns, scale)]
    for label, result, row in zip(labels, results, shown, strict=True):
        cells = [" "] * columns
        for segment in sorted(row.segments(), key=lambda s: list(GLYPHS).index(s.kind)):
            first = min(columns - 1, int((segment.start - origin) * scale))
            stop = max(first + 1, min(columns, math.ceil((segment.end - origin) * scale)))
            for column in range(first, stop):
                cells[column] = GLYPHS[segment.kind]
        lines.append(f"{label:<{label_width}}|{''.join(cells)}| {result}")
    if len(rows) > len(shown):
        lines.append(f"… {len(rows) - len(shown):,} more calls not shown (of {len(rows):,})")
    lines.append(f"legend: {LEGEND}")
    return "\n".join(lines) + "\n"


def _axis(length: float, columns: int, scale: float) -> str:
    """Tick labels placed at their columns, as far as they fit without overlapping."""
    axis = [" "] * (columns + 8)
    step = nice_step(length)
    count = int(length / step + 1e-9) + 1 if length > 0 else 1
    free_from = 0
    for number in range(count):
        text = tick_label(number * step, step)
        column = round(number * step * scale)
        if column >= free_from and column + len(text) <= len(axis):
            axis[column : column + len(text)] = text
            free_from = column + len(text) + 1
    return "".join(axis).rstrip()
