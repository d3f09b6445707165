"""What watching a run costs the engine: CPU per call with no display, plain lines, the live view.

A model that answers at once isolates the engine and its observers. The live view draws into a
terminal-like buffer (rich, forced to colour) at its real refresh rate; the plain lines go to a
buffer. It prints seconds, microseconds per call and each ratio to no display. ::

    python benchmarks/console_overhead.py            # 20,000 calls at concurrency 500
    python benchmarks/console_overhead.py --calls 2000 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from collections.abc import Callable

from rich.console import Console

from fanwise import Call, Completion, Engine, Request, Usage
from fanwise.events import PhaseFinished, PhaseStarted
from fanwise.models.base import DeltaSink, Model
from fanwise.ui.console import Display, LiveConsole, PlainConsole


class Instant(Model):
    """A model that answers at once: all the time measured is fanwise's own."""

    @property
    def name(self) -> str:
        return "instant"

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        await asyncio.sleep(0)
        return Completion("ok", Usage(10, 5), model="instant")


async def run(calls: int, concurrency: int, display: Display | None) -> float:
    engine = Engine(Instant(), concurrency=concurrency, observer=display)
    work = (Call(Request.text(f"question {n}")) for n in range(calls))
    started = time.process_time()
    if display is None:
        await engine.run(work, keep=False)
    else:
        async with display.showing():
            engine.emit(PhaseStarted("batch", calls, engine.now()))
            await engine.run(work, keep=False)
            engine.emit(PhaseFinished("batch", engine.now()))
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=500)
    args = parser.parse_args()

    def live() -> Display:
        terminal = Console(file=io.StringIO(), force_terminal=True, width=120, height=40)
        return LiveConsole(terminal)

    contenders: list[tuple[str, Callable[[], Display | None]]] = [
        ("no display", lambda: None),
        ("plain lines", lambda: PlainConsole(io.StringIO())),
        ("live view", live),
    ]
    baseline = 0.0
    print(f"{args.calls:,} calls at concurrency {args.concurrency}, CPU seconds (process time)")
    for name, make in contenders:
        seconds = min(asyncio.run(run(args.calls, args.concurrency, make())) for _ in range(3))
        baseline = baseline or seconds
        per_call = seconds / args.calls * 1e6
        print(f"{name:12} {seconds:6.2f} s  {per_call:6.1f} µs/call  {seconds / baseline:4.2f}×")


if __name__ == "__main__":
    main()
