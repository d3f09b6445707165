"""Ctrl-C: the first one stops the run cleanly, a second one exits at once.

The first SIGINT cancels the main task: the calls in flight are cancelled, the finished ones are
already in the journal, and ``run_interruptible`` raises ``KeyboardInterrupt`` once the cleanup
has run, for the command to print the resume line and exit 130. A second SIGINT, while that
cleanup runs, ends the process at once with 130 (nothing is lost: every finished call was
committed when it settled).

The handler is removed while the loop still runs. asyncio's own ``loop.close()`` closes the
loop's self-pipe *before* it removes signal handlers, and a Ctrl-C in that window was written to
the closed pipe: "Exception ignored ... signal wakeup fd ... Bad file descriptor" (1 run in 11).
From then until ``asyncio.run`` returns, a Ctrl-C exits at once with 130.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

from fanwise.cli.errors import EXIT_INTERRUPTED

T = TypeVar("T")


class _Interrupted(Exception):
    """The first Ctrl-C, carried out of the event loop as an ordinary exception."""


def run_interruptible(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` with the two-stage Ctrl-C described above."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        return asyncio.run(_guarded(main))
    except _Interrupted:
        raise KeyboardInterrupt from None
    finally:
        if signal.getsignal(signal.SIGINT) is _exit_now:
            signal.signal(signal.SIGINT, previous)


def _exit_now(signum: int, frame: object) -> None:
    """Ctrl-C while the event loop shuts down: nothing is left to cancel; exit at once."""
    os.write(2, b"\nfanwise: interrupted: exiting now\n")
    os._exit(EXIT_INTERRUPTED)


async def _guarded(main: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            os.write(2, b"\nfanwise: interrupted again: exiting now\n")
            os._exit(EXIT_INTERRUPTED)
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or Windows
        return await main
    try:
        return await main
    except asyncio.CancelledError:
        if not presses:
            raise
        task.uncancel()
        raise _Interrupted from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)  # before loop.close() closes the self-pipe
        signal.signal(signal.SIGINT, _exit_now)
