"""When an ``--engine auto`` run must stop waiting for its batch: the switch to live calls.

Pure arithmetic on what is known, so a test steps a fake clock through it. The live path's
speed comes from the limiter (``live_estimate``: ``--rpm``/``--tpm`` buckets, the rates the
server's ``x-ratelimit-*`` headers gave, a rate learned from 429s, the AIMD window) and the
latency seen so far, or a deliberately slow guess before any call has answered. The batch's
speed comes from its progress counts (``BatchWatch``). The rule (docs/deadline.md)::

    live(n)  = n / rate + latency                      seconds for n lines live (0 when n = 0)
    margin   = SAFETY * live(n) + MIN_MARGIN
    switch   = deadline - margin - live(n)             n: the lines without an answer read back

At ``switch`` the batch is cancelled, its completed lines kept and the rest sent live. ``n``
counts the lines the batch reports completed too, until its results are read: a cancelled batch
can take minutes to return them, and the deadline must hold even if it never does. Those lines
wait for the results until ``deadline - LAST_RESORT - live(open lines)``, then go live.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fanwise.limits import AdaptiveConcurrency, Bucket, LearnedRate, Limits, ServerPacing

DEFAULT_LATENCY = 10.0
"""Seconds a live call is assumed to take before one has answered: slow on purpose, so the
switch comes early rather than late."""
SAFETY = 0.2
"""The margin's share of the live time: rates and latencies are estimates."""
MIN_MARGIN = 1.0
"""Seconds of margin whatever the size: a poll, a cancel, a result file read back."""
LAST_RESORT = MIN_MARGIN / 2
"""Seconds of margin kept when the lines held back for a cancelled batch's results go live
without them: the switch's margin less what the wait for those results may spend."""
POLL_FLOOR = 0.25
"""The shortest wait between two looks at a batch (seconds)."""
BATCH_WINDOW = 24 * 3600.0
"""What the Batch API promises: done within 24 h. The guess for a batch's pace until its own
progress counts say better."""


@dataclass(frozen=True, slots=True)
class LiveEstimate:
    """How fast the live path answers: ``rate`` calls a second, each taking ``latency`` s."""

    rate: float
    latency: float
    why: str = ""

    def seconds(self, lines: int) -> float:
        """Seconds to answer ``lines`` calls live."""
        return 0.0 if lines <= 0 else lines / self.rate + self.latency

    def lines_in(self, seconds: float) -> int:
        """How many calls the live path answers in ``seconds``."""
        if seconds <= self.latency:
            return 0
        return int((seconds - self.latency) * self.rate)


def live_estimate(
    limiter: object,
    concurrency: int,
    *,
    latency: float | None = None,
    tokens_per_call: float = 1000.0,
    default_latency: float = DEFAULT_LATENCY,
) -> LiveEstimate:
    """The live path's pace from what the limiter knows; the slowest limit sets it.

    ``latency`` is the mean seen so far (None before any live answer). A limit the limiter has
    no evidence of (the adaptive ones before a 429 or a header) does not count.
    """
    seconds = latency if latency is not None and latency > 0 else default_latency
    caps: list[tuple[float, str]] = [
        (concurrency / seconds, f"{concurrency} calls at once, {seconds:.3g} s each")
    ]
    tokens = max(1.0, tokens_per_call)
    for limit in getattr(limiter, "limits", ()) if isinstance(limiter, Limits) else ():
        if isinstance(limit, Bucket):
            per_second = limit.rate if limit.unit == "requests" else limit.rate / tokens
            caps.append((per_second, f"--{'rpm' if limit.unit == 'requests' else 'tpm'}"))
        elif isinstance(limit, ServerPacing):
            for unit, mirror in limit.mirrors.items():
                per_second = mirror.rate if unit == "requests" else mirror.rate / tokens
                caps.append((per_second, f"the server's {unit} limit"))
        elif isinstance(limit, LearnedRate) and limit.rate is not None:
            caps.append((limit.rate, "a rate learned from 429s"))
        elif isinstance(limit, AdaptiveConcurrency) and limit.limit < concurrency:
            caps.append((int(limit.limit) / seconds, "the adaptive window"))
    rate, why = min(caps, key=lambda cap: cap[0])
    return LiveEstimate(max(rate, 1e-6), seconds, why)


def margin(live_seconds: float) -> float:
    return SAFETY * live_seconds + MIN_MARGIN


def switch_at(deadline: float, remaining: int, live: LiveEstimate) -> float:
    """The last safe moment to send ``remaining`` lines live and still meet ``deadline``."""
    needed = live.seconds(remaining)
    return deadline - margin(needed) - needed


class BatchWatch:
    """The batch's progress over time, and its pace: lines it finished a second so far."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.since: float | None = None  # the first look

    def saw(self, now: float, done: int) -> None:
        if self.since is None:
            self.since = now
        self.done = max(self.done, done)

    def rate(self, now: float) -> float | None:
        """Lines a second since the first look (a stalled batch's pace falls as time passes)."""
        if self.since is None or now <= self.since or self.done == 0:
            return None
        return self.done / (now - self.since)

    def eta(self, now: float) -> float | None:
        """When the batch will be done at its pace so far; None before it has done a line."""
        rate = self.rate(now)
        if rate is None:
            return None
        return now + (self.total - self.done) / rate


@dataclass(frozen=True, slots=True)
class Switch:
    """Why and when an auto run stopped waiting for its batch."""

    at: float  # the wall clock's time
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What the planner says at one look: switch now or not, and why."""

    switch: bool
    at: float
    remaining: int
    live_seconds: float
    batch_eta: float | None
    reason: str


class Planner:
    """Decides, at each look, whether the lines still open must go live now."""

    def __init__(self, deadline: float, total: int, *, most: float = 60.0) -> None:
        self.deadline = deadline
        self.watch = BatchWatch(total)
        self.most = most  # the longest wait between two looks

    def decide(self, now: float, remaining: int, live: LiveEstimate) -> Decision:
        at = switch_at(self.deadline, remaining, live)
        eta = self.watch.eta(now)
        needed = live.seconds(remaining)
        if now < at:
            return Decision(False, at, remaining, needed, eta, "")
        pace = "no line done yet" if eta is None else f"at its pace done in {eta - now:,.0f} s"
        reason = (
            f"{remaining} lines left and {self.deadline - now:,.0f} s to the deadline: live "
            f"needs ~{needed:,.0f} s ({live.rate:.3g} calls/s, set by {live.why}) plus "
            f"{margin(needed):,.0f} s margin; the batch has done {self.watch.done}/"
            f"{self.watch.total} ({pace})"
        )
        return Decision(True, at, remaining, needed, eta, reason)

    def wait(self, now: float, at: float) -> float:
        """The wait before the next look: a tenth of the time to the switch, within bounds,
        so a 40 s deadline is watched closely and a 12 h one is not polled every second."""
        return min(self.most, max(POLL_FLOOR, (at - now) / 10.0))


@dataclass(frozen=True, slots=True)
class Forecast:
    """What an auto run expects, before spending: the split, the cost, the deadline met."""

    total: int
    deadline: float  # seconds from now
    live: LiveEstimate
    batch_lines: int
    live_lines: int
    switch_in: float | None  # seconds from now; None when the batch is expected to finish
    feasible: bool  # all-live could meet the deadline
    by_deadline: int  # lines answered by the deadline if it is not feasible (all live)
    line_cost: float | None  # the live price of one line, on average; None if unpriced
    basis: str = f"the batch's pace unknown: assumed its {BATCH_WINDOW / 3600:.0f} h window"
    """What the batch's expected pace rests on."""

    @property
    def cost(self) -> float | None:
        if self.line_cost is None:
            return None
        return self.line_cost * (self.live_lines + 0.5 * self.batch_lines)

    @property
    def all_live_cost(self) -> float | None:
        return None if self.line_cost is None else self.line_cost * self.total

    def lines(self) -> Sequence[str]:
        """The forecast in words, one line each."""
        from fanwise.prices import format_usd  # a leaf: only a forecast that is shown needs it

        if self.deadline <= 0:  # a resume after the deadline
            return [f"the deadline has passed: the {self.total} lines left go live now"]
        out = [
            f"deadline in {_duration(self.deadline)}; live pace {self.live.rate:.3g} calls/s "
            f"(set by {self.live.why}): all {self.total} lines live take "
            f"~{_duration(self.live.seconds(self.total))}"
        ]
        if not self.feasible:
            out.append(
                f"the deadline is too short even for all-live: everything goes live now, and "
                f"about {self.by_deadline} of {self.total} lines would be answered by then"
            )
        elif self.switch_in is None:
            out.append(
                f"expected: all {self.total} lines by the Batch API, at batch price ({self.basis})"
            )
        else:
            out.append(
                f"expected: {self.batch_lines} lines by the Batch API, {self.live_lines} live "
                f"after a switch in ~{_duration(self.switch_in)} ({self.basis})"
            )
        if self.cost is not None and self.all_live_cost is not None:
            out.append(
                f"expected cost {format_usd(self.cost)} (all-live {format_usd(self.all_live_cost)})"
            )
        return out


def forecast(
    total: int,
    deadline: float,
    live: LiveEstimate,
    *,
    batch_seconds: float | None = None,
    line_cost: float | None = None,
    basis: str | None = None,
) -> Forecast:
    """The expected split if the batch runs its lines evenly over ``batch_seconds`` (its 24 h
    window when unknown; ``basis`` says where a known pace comes from).

    The switch comes at ``switch_at(deadline, total)``: until then no line has an answer read
    back (a batch's results come when it ends), so the batch keeps what it has done by then."""
    extra = {} if basis is None else {"basis": basis}
    seconds = BATCH_WINDOW if batch_seconds is None else batch_seconds
    needed = live.seconds(total)
    feasible = needed + margin(needed) <= deadline
    if not feasible:
        by = min(total, live.lines_in(deadline))
        return Forecast(total, deadline, live, 0, total, 0.0, False, by, line_cost, **extra)
    at = switch_at(deadline, total, live)
    if seconds <= at:
        return Forecast(total, deadline, live, total, 0, None, True, total, line_cost, **extra)
    batch = min(total, int(total * at / seconds)) if seconds > 0 else total
    return Forecast(
        total, deadline, live, batch, total - batch, at, True, total, line_cost, **extra
    )


_SPAN = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([dhms])")
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_CLOCK = re.compile(r"\d{1,2}:\d{2}(:\d{2})?")


def parse_deadline(text: str, now: datetime) -> float:
    """Seconds from ``now`` to the deadline ``text`` names: seconds (``90``), a span (``40s``,
    ``90m``, ``2h``, ``1h30m``), a time of day (``07:00``: the next one, local time) or an ISO
    8601 time (``2026-12-07T07:00``, local time unless it names its zone). ``now`` carries
    the local zone (``datetime.now().astimezone()``)."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if math.isnan(seconds):
        spans = _SPAN.findall(text.lower())
        if spans and "".join(n + u for n, u in spans) == text.lower():
            seconds = sum(float(n) * _UNIT[u] for n, u in spans)
        elif _CLOCK.fullmatch(text):
            parts = [int(p) for p in text.split(":")]
            if parts[0] > 23 or parts[1] > 59 or (len(parts) > 2 and parts[2] > 59):
                raise ValueError(f"{text!r} is not a time of day")
            when = now.replace(hour=parts[0], minute=parts[1], second=0, microsecond=0)
            when = when.replace(second=parts[2]) if len(parts) > 2 else when
            if when <= now:
                when += timedelta(days=1)
            seconds = (when - now).total_seconds()
        else:
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"{text!r} is not a deadline: give seconds (90), a span (40s, 90m, 2h, "
                    "1h30m), a time of day (07:00) or an ISO 8601 time (2026-12-07T07:00)"
                ) from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=now.tzinfo)
            seconds = (when - now).total_seconds()
            if seconds <= 0:
                raise ValueError(f"{text} has passed")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r}: a deadline must be later than now")
    return seconds


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "forever"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = [
    "BATCH_WINDOW",
    "DEFAULT_LATENCY",
    "LAST_RESORT",
    "MIN_MARGIN",
    "BatchWatch",
    "Decision",
    "Forecast",
    "LiveEstimate",
    "Planner",
    "Switch",
    "forecast",
    "live_estimate",
    "margin",
    "parse_deadline",
    "switch_at",
]
