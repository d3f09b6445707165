"""After Ctrl-C, the live view's last frame says which calls were cancelled."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console

from fanwise.events import CallStarted, PhaseStarted
from fanwise.ui.console import LiveConsole


async def test_an_interrupted_run_leaves_its_unfinished_calls_marked_cancelled() -> None:
    """Cancelling the body turns running rows into 'cancelled', and the last frame shows it."""
    out = io.StringIO()
    live = LiveConsole(Console(file=out, width=100, force_terminal=True), refresh_per_second=1000)

    async def run() -> None:
        async with live.showing():
            live(PhaseStarted("research", 2, 0.0))
            live(CallStarted(0, "k0", "sights?", 1, 0.0))
            live(CallStarted(1, "k1", "culture?", 1, 0.0))
            await asyncio.sleep(30)

    task = asyncio.create_task(run())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = live.progress.rows
    assert [rows[i].state for i in (0, 1)] == ["cancelled", "cancelled"]
    assert live.progress.running == 0
    assert "cancelled" in out.getvalue().rsplit("sights?", 1)[-1]
