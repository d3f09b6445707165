"""Ctrl-C, SIGTERM and SIGHUP: the first one stops the run cleanly, a second one exits at once.

``docker stop``, systemd and Kubernetes send SIGTERM; closing a terminal sends SIGHUP. Each is
handled as Ctrl-C is. The first signal cancels the main task: the calls in flight are cancelled,
the finished ones are already in the journal, and ``run_interruptible`` raises ``Interrupted``
(a ``KeyboardInterrupt`` carrying the signal) once the cleanup has run, for the command to print
the resume line and exit 128 + the signal's number (130, 143, 129). A second signal, while that
cleanup runs, ends the process at once with that code (nothing is lost: every finished call was
committed when it settled).

The handlers are removed while the loop still runs. asyncio's own ``loop.close()`` closes the
loop's self-pipe *before* it removes signal handlers, and a Ctrl-C in that window was written to
the closed pipe: "Exception ignored ... signal wakeup fd ... Bad file descriptor" (1 run in 11).
From then until ``asyncio.run`` returns, a signal exits at once with its code.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fanwise.cli.errors import EXIT_INTERRUPTED

T = TypeVar("T")

SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals that stop a run cleanly (SIGHUP does not exist on Windows)."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal, after its cleanup; ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        """How the run was stopped, for its reason in the journal: Ctrl-C, SIGTERM, SIGHUP."""
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name


class _Stopped(Exception):
    """The first signal, carried out of the event loop as an ordinary exception."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def exit_code(error: BaseException) -> int:
    """The exit code of an interruption: 128 + its signal, 130 for a plain Ctrl-C."""
    return error.exit_code if isinstance(error, Interrupted) else EXIT_INTERRUPTED


def run_interruptible(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` with the two-stage stop described above."""
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    try:
        return asyncio.run(_guarded(main))
    except _Stopped as stop:
        raise Interrupted(stop.signum) from None
    finally:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is _exit_now:
                signal.signal(signum, handler)


def _exit_now(signum: int, frame: object) -> None:
    """A signal while the event loop shuts down: nothing is left to cancel; exit at once."""
    os.write(2, b"\nfanwise: interrupted: exiting now\n")
    os._exit(128 + signum)


async def _guarded(main: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def stopper(signum: int) -> Callable[[], None]:
        def on_signal() -> None:
            received.append(signum)
            if len(received) > 1:
                os.write(2, b"\nfanwise: interrupted again: exiting now\n")
                os._exit(128 + signum)
            task.cancel()

        return on_signal

    try:
        for signum in SIGNALS:
            loop.add_signal_handler(signum, stopper(signum))
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or Windows
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)
        return await main
    try:
        return await main
    except asyncio.CancelledError:
        if not received:
            raise
        task.uncancel()
        raise _Stopped(received[0]) from None
    finally:
        for signum in SIGNALS:  # before loop.close() closes the self-pipe
            loop.remove_signal_handler(signum)
            signal.signal(signum, _exit_now)
