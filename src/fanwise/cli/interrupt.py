"""Ctrl-C: the first one stops the run cleanly, a second one exits at once.

The first SIGINT cancels the main task: the calls in flight are cancelled, the finished ones are
already in the journal, and ``run_interruptible`` raises ``KeyboardInterrupt`` once the cleanup
has run, for the command to print the resume line and exit 130. A second SIGINT, while that
cleanup runs, ends the process at once with 130 (nothing is lost: every finished call was
committed when it settled).
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
    try:
        return asyncio.run(_guarded(main))
    except _Interrupted:
        raise KeyboardInterrupt from None


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
