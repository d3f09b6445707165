"""A big fan-out without a terminal: one line of counts every few seconds, and the failures.

``fanwise batch big.jsonl 2> log`` used to print a line for every start and every end (1,315
lines for 500 requests). Without a terminal, and unless ``--plain`` asks for every line, a batch
prints instead, every ``every`` seconds, how far it is, plus each failure as it happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

from fanwise.events import BatchProgress, CallRetrying, CallSettled, Event
from fanwise.outcome import Fulfilled
from fanwise.ui.plain import PlainConsole

SUMMARY_EVERY = 5.0
"""Seconds between two summary lines."""


class PeriodicConsole(PlainConsole):
    """Failures and Batch API progress as they come; the counts every ``every`` seconds."""

    def __init__(
        self,
        stream: IO[str],
        *,
        total: int | None = None,
        every: float = SUMMARY_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(stream)
        self.total = total
        self.every = every
        self.clock = clock
        self.started = self.last = clock()
        self.fulfilled = self.failed = self.retries = 0

    def __call__(self, event: Event) -> None:
        match event:
            case CallRetrying():
                self.retries += 1
            case CallSettled(outcome=Fulfilled()):
                self.fulfilled += 1
            case CallSettled():
                self.failed += 1
                self._print(self.line(event))
            case BatchProgress():
                self._print(self.line(event))
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self._print(self.counts(now))

    def counts(self, now: float) -> str:
        """``⏱ 120/500 settled: 118 fulfilled, 2 failed, 3 retries · 12 s``."""
        settled = self.fulfilled + self.failed
        of = f"/{self.total:,}" if self.total is not None else ""
        retries = f", {self.retries:,} retries" if self.retries else ""
        return (
            f"⏱ {settled:,}{of} settled: {self.fulfilled:,} fulfilled, {self.failed:,} failed"
            f"{retries} · {now - self.started:.0f} s"
        )

    def _print(self, line: str | None) -> None:
        if line is not None:
            print(line, file=self.stream, flush=True)
