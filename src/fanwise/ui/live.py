"""The live view on a terminal: one row per call and an overall bar, redrawn a few times a second.

It is an event observer like any other. Events only update ``Progress`` (O(1) each); drawing
happens at most ``refresh_per_second`` times, either when an event arrives after the frame is due
or from a ticker coroutine, so elapsed times move while nothing else happens. The engine never
waits for the terminal longer than one bounded frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from fanwise.events import (
    BatchProgress,
    Event,
    PhaseFinished,
    PhaseStarted,
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
)
from fanwise.outcome import Rejected
from fanwise.prices import format_usd, shown_cost
from fanwise.stages.result import WorkflowResult
from fanwise.ui.plain import PlainConsole, shorten
from fanwise.ui.progress import CallRow, Price, Progress

STATE_STYLES = {
    "running": "cyan",
    "retrying": "yellow",
    "done": "green",
    "cached": "green dim",
    "failed": "red",
    "cancelled": "magenta",
}


def seconds(value: float) -> str:
    """``4.2 s`` under a minute, ``3:07`` above."""
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    return (
        f"{minutes}:{secs:02d}"
        if minutes < 60
        else f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
    )


def state_text(row: CallRow, now: float) -> Text:
    label: str = row.state
    if row.state == "retrying":
        label = f"retrying in {seconds(max(0.0, row.resume_at - now))} ({row.error})"
    elif row.state == "failed":
        label = f"failed: {shorten(row.error, 24)}"
    return Text(label, style=STATE_STYLES[row.state])


def render(progress: Progress, now: float, width: int = 100) -> RenderableType:
    """One frame: the rows (or the latest failures, for a big phase), then the overall bar."""
    parts: list[RenderableType] = []
    if not progress.compact:
        parts.append(_rows(progress, now, width))
    elif progress.failures:
        failures = Table.grid(padding=(0, 1))
        failures.add_row(Text("latest failures:", style="bold red"))
        for failure in progress.failures:
            what = f"{failure.kind}: {shorten(failure.message, 60)}"
            failures.add_row(Text(f"✗ {shorten(failure.label, 50)}: {what}"))
        parts.append(failures)
    parts.append(_bar(progress, now, width))
    return Group(*parts)


def _rows(progress: Progress, now: float, width: int) -> Table:
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    # The question gives way first; the numbers keep their width (3 + 8 + 5 + 7, 12 of padding).
    state_width = 32 if width >= 110 else 22
    question_width = max(10, width - 36 - state_width)
    table.add_column("#", justify="right", style="dim", no_wrap=True, min_width=3)
    table.add_column("question", no_wrap=True, overflow="ellipsis", max_width=question_width)
    table.add_column("state", no_wrap=True, overflow="ellipsis", max_width=state_width)
    table.add_column("elapsed", justify="right", no_wrap=True, min_width=8)
    table.add_column("tries", justify="right", no_wrap=True, min_width=5)
    table.add_column("tokens", justify="right", no_wrap=True, min_width=7)
    for index in sorted(progress.rows):
        row = progress.rows[index]
        table.add_row(
            str(index + 1),
            shorten(row.label, 200),
            state_text(row, now),
            seconds(row.elapsed(now)),
            str(row.attempt),
            f"{row.tokens:,}" if row.tokens else "",
        )
    if progress.queued:  # not started yet: the engine names a call only when it gets a slot
        more = f"{progress.queued} more, waiting for a free slot"
        table.add_row("", Text(more, style="dim"), Text("waiting", style="dim"), "", "", "")
    return table


def _bar(progress: Progress, now: float, width: int) -> Table:
    rate, eta = progress.throughput(now), progress.eta(now)
    facts = [f"{progress.settled}/{progress.total}"]
    if progress.rejected:
        facts.append(f"[red]{progress.rejected} failed[/]")
    facts.append(f"{progress.running} running")
    if progress.retrying:
        facts.append(f"[yellow]{progress.retrying} retrying[/]")
    if progress.queued:
        facts.append(f"{progress.queued} waiting")
    facts.append(f"{rate:.1f} calls/s" if rate else "– calls/s")
    facts.append(f"ETA {seconds(eta)}" if eta is not None else "ETA –")
    facts.append(f"{progress.tokens:,} tokens")
    if progress.cost is not None:
        facts.append(format_usd(progress.cost))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row(
        ProgressBar(total=max(1, progress.total), completed=progress.settled, width=24),
        Text.from_markup(" · ".join(facts)),
    )
    return grid


def summary_table(result: WorkflowResult, cost: float | str | None = None) -> Table:
    """The end of a run at a glance: what arrived, what failed and why, and what it cost."""
    stats = result.stats
    table = Table(title="📊 run summary", title_justify="left", show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    cached = sum(1 for a in result.answers if getattr(a.outcome, "cached", False))
    table.add_row(
        "fulfilled",
        Text(f"{stats.fulfilled}" + (f" ({cached} from the journal)" if cached else ""), "green"),
    )
    if stats.truncated:
        table.add_row("cut short", Text(f"{stats.truncated} at their token cap", "yellow"))
    rejected = [a for a in result.answers if isinstance(a.outcome, Rejected)]
    reasons = Text(str(stats.rejected), "red" if rejected else "")
    for answer in rejected[:5]:
        assert isinstance(answer.outcome, Rejected)
        reasons.append(
            f"\n{shorten(answer.question, 50)}: {answer.outcome.kind}: "
            f"{shorten(answer.outcome.message, 60)}"
        )
    if len(rejected) > 5:
        reasons.append(f"\n… and {len(rejected) - 5} more")
    table.add_row("rejected", reasons)
    table.add_row("wall time", f"{seconds(stats.wall_time)} (research)")
    held = f" (+ {seconds(stats.queue_time)} queued in fanwise's limiter)"
    table.add_row(
        "service time", seconds(stats.service_time) + (held if stats.queue_time >= 0.05 else "")
    )
    table.add_row("overlap", stats.speedup_text(times=False))
    if result.synthesis is not None:
        table.add_row("synthesis", seconds(stats.synthesis_time))
    usage = stats.usage
    table.add_row(
        "tokens",
        f"{usage.total_tokens:,} ({usage.input_tokens:,} in, {usage.output_tokens:,} out)"
        + (f" + usage unknown for {usage.unknown} call(s)" if usage.unknown else ""),
    )
    table.add_row(
        "cost", shown_cost(cost) if cost is not None else "unknown (no price for this model)"
    )
    return table


class LiveConsole:
    """The rich live view of the fan-out phases; the synthesis gets the plain lines around it."""

    def __init__(
        self,
        console: Console,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_per_second: float = 10.0,
        price: Price | None = None,
        keep_rows: int | None = None,
    ) -> None:
        self.console = console
        self.clock = clock
        self.offset = clock()  # event time = clock() - offset, set again by every event
        self.interval = 1.0 / refresh_per_second
        rows = keep_rows if keep_rows is not None else max(5, min(40, console.height - 8))
        self.progress = Progress(keep_rows=rows, price=price)
        self.lines = PlainConsole(console.file)
        self.live: Live | None = None
        self.next_frame = 0.0
        self.frames = 0  # frames drawn so far: the refresh rate's bound is checkable

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted | RunFinished):  # the phases frame the view, not the run
            return
        if isinstance(event, StageStarted | StageFinished):  # a stage's line, above the view
            self._stop()
            self._print(self.lines.line(event))
            return
        if isinstance(event, PhaseStarted):
            line = self.lines.line(event)  # the plain formatter keeps track of the phase
            if event.phase == "synthesis":
                self._stop()
                self._print(line)
                return
        if self.lines.phase == "synthesis" or isinstance(event, BatchProgress):
            self._print(self.lines.line(event))  # a batch's progress: a line above the view
            return
        self.offset = self.clock() - event.at
        self.progress.apply(event)
        if isinstance(event, PhaseFinished):
            self._stop()
            return
        self._start()
        if event.at >= self.next_frame:
            self.draw()

    def _print(self, line: str | None) -> None:
        if line is not None:
            self.console.print(line, markup=False, highlight=False)

    def now(self) -> float:
        """Now on the engine's clock, which the events carry: no engine handle needed."""
        return self.clock() - self.offset

    def draw(self) -> None:
        if self.live is None:
            return
        now = self.now()
        self.next_frame = now + self.interval
        self.frames += 1
        self.live.update(render(self.progress, now, self.console.width), refresh=True)

    def _start(self) -> None:
        if self.live is None:
            self.live = Live(
                console=self.console,
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
                vertical_overflow="visible",
            )
            self.live.start()
            self.next_frame = 0.0

    def _stop(self) -> None:
        if self.live is not None:
            self.draw()
            self.live.stop()
            self.live = None

    def summary(self, result: WorkflowResult, cost: float | str | None = None) -> None:
        self.console.print(summary_table(result, cost))

    @contextlib.asynccontextmanager
    async def showing(self) -> AsyncIterator[None]:
        """Redraw on a timer while the body runs; leave the last frame on screen at the end."""

        async def tick() -> None:
            while True:
                await asyncio.sleep(self.interval)
                if self.now() >= self.next_frame:
                    self.draw()

        ticker = asyncio.create_task(tick())
        try:
            yield
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.progress.cancel_unfinished(self.now())
            raise
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            self._stop()
