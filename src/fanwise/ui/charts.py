"""Inline SVG charts for the HTML report, drawn in Python: no script, no CDN, works offline.

Every piece of text that reaches the SVG (questions, error messages) is escaped here, so model
or user text can never become markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from fanwise.ui.plain import shorten
from fanwise.ui.timeline import TimelineRow, nice_step, span, tick_label

WIDTH = 1000
LABEL = 290  # the label column of the Gantt chart, in SVG units
RESULT = 130  # room right of the last bar for its result, e.g. "timeout 3.0 s, 4 tries"
ROW = 24


def _x(value: float, origin: float, scale: float) -> float:
    return LABEL + (value - origin) * scale


def _ticks(length: float, scale: float, left: float, top: float, bottom: float) -> list[str]:
    step = nice_step(length)
    count = int(length / step + 1e-9) + 1 if length > 0 else 1
    parts = []
    for number in range(count):
        x = left + number * step * scale
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>'
            f'<text class="tick" x="{x:.1f}" y="{top - 6}">{tick_label(number * step, step)}</text>'
        )
    return parts


def gantt(rows: Sequence[TimelineRow]) -> str:
    """One row per call, every attempt a bar and every wait a dashed line, on one time axis."""
    origin, last = span(rows)
    length = max(last - origin, 1e-6)
    scale = (WIDTH - LABEL - RESULT) / length
    top = 28
    height = top + ROW * len(rows) + 10
    parts = [
        f'<svg class="gantt" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="timeline of {len(rows)} calls" xmlns="http://www.w3.org/2000/svg">',
        *_ticks(length, scale, LABEL, top, height - 10),
    ]
    for position, row in enumerate(rows):
        y = top + position * ROW
        status = "synthesis" if row.synthesis else row.outcome.status
        number = "S" if row.synthesis else str(row.index + 1)
        parts.append(
            f'<g class="call {status}" data-index="{row.index}">'
            f"<title>{escape(row.label)}: {escape(row.result())}</title>"
            f'<text class="label" x="{LABEL - 8}" y="{y + ROW / 2 + 4}">'
            f"{number} · {escape(shorten(row.label, 38))}</text>"
        )
        for segment in row.segments():
            x1 = _x(segment.start, origin, scale)
            x2 = max(x1 + 2.0, _x(segment.end, origin, scale))
            tip = escape(f"{segment.note or segment.kind} ({segment.end - segment.start:.2f} s)")
            if segment.kind == "wait":
                parts.append(
                    f'<line class="wait" x1="{x1:.1f}" x2="{x2:.1f}" y1="{y + ROW / 2}" '
                    f'y2="{y + ROW / 2}"><title>waiting to retry: {tip}</title></line>'
                )
            else:
                parts.append(
                    f'<rect class="attempt {segment.kind}" x="{x1:.1f}" y="{y + 4}" '
                    f'width="{x2 - x1:.1f}" height="{ROW - 8}" rx="3"><title>{tip}</title></rect>'
                )
        end = _x(row.end, origin, scale)
        parts.append(
            f'<text class="result" x="{end + 4:.1f}" y="{y + ROW / 2 + 4}">'
            f"{escape(row.result())}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram(latencies: Sequence[float], *, bins: int = 30) -> str:
    """How the call latencies spread: a bar per latency bin."""
    counts, low, width = _bin(latencies, bins)
    return _bars(counts, low, width, caption=f"latency of {len(latencies):,} calls", unit="calls")


def throughput(
    ends: Sequence[float], origin: float, *, failed: Sequence[bool] = (), buckets: int = 40
) -> str:
    """Calls settled per second over the run, one bar per time slice; failures in red on top."""
    caption = "calls settled per second (red: failed)"
    if not ends:
        return _bars([], 0.0, 1.0, caption=caption, unit="calls/s")
    width = max((max(ends) - origin) / buckets, 1e-6)
    counts, failures = [0.0] * buckets, [0.0] * buckets
    for number, end in enumerate(ends):
        bucket = min(buckets - 1, int((end - origin) / width))
        counts[bucket] += 1 / width
        if number < len(failed) and failed[number]:
            failures[bucket] += 1 / width
    return _bars(counts, 0.0, width, caption=caption, unit="calls/s", marked=failures)


def _bin(values: Sequence[float], bins: int) -> tuple[list[float], float, float]:
    if not values:
        return [], 0.0, 1.0
    low, high = min(values), max(values)
    width = max((high - low) / bins, 1e-6)
    counts = [0.0] * bins
    for value in values:
        counts[min(bins - 1, int((value - low) / width))] += 1
    return counts, low, width


def _bars(
    values: Sequence[float],
    low: float,
    width: float,
    *,
    caption: str,
    unit: str,
    marked: Sequence[float] = (),
) -> str:
    """A bar chart over an x axis of seconds from ``low``, bins ``width`` wide; the ``marked``
    part of each bar (failures) is drawn at its bottom in red."""
    chart_w, chart_h, left, right, top = WIDTH, 220, 90, 40, 24
    plot_w, plot_h = chart_w - left - right, chart_h - top - 30
    peak = max(values, default=0.0) or 1.0
    parts = [
        f'<svg class="bars" viewBox="0 0 {chart_w} {chart_h}" role="img" '
        f'aria-label="{escape(caption)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text class="caption" x="{left}" y="14">{escape(caption)}</text>',
        f'<text class="tick" x="{left - 6}" y="{top + 4}" text-anchor="end">'
        f"{_round(peak)} {unit}</text>",
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}"/>',
    ]
    step = plot_w / max(1, len(values))
    for number, value in enumerate(values):
        h = plot_h * value / peak
        x, start = left + number * step, low + number * width
        bad = marked[number] if number < len(marked) else 0.0
        tip = f"{start:.2f}–{start + width:.2f} s: {_round(value)} {unit}"
        if bad:
            tip += f", {_round(bad)} failed"
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{max(1.0, step - 1):.1f}" height="{h:.1f}"><title>{tip}</title></rect>'
        )
        if bad:
            hb = plot_h * bad / peak
            parts.append(
                f'<rect class="bar failed" x="{x:.1f}" y="{top + plot_h - hb:.1f}" '
                f'width="{max(1.0, step - 1):.1f}" height="{hb:.1f}"><title>{tip}</title></rect>'
            )
    for number in range(0, len(values) + 1, max(1, len(values) // 5)):
        x = left + number * step
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
            f"{low + number * width:.1f} s</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _round(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or math.isclose(value, round(value)) else f"{value:.1f}"
