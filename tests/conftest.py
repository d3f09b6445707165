"""Shared fixtures. Keep each one small and documented; group them by what they provide.

Simulator fixtures (an OpenAI-compatible server on 127.0.0.1, see docs/simulator.md):

- ``simulator``: an in-process ``Simulator`` with the default config (no latency, no faults, no
  rate limits). Give ``simulator.base_url`` to ``AsyncOpenAI(api_key="test", base_url=...,
  max_retries=0)``; steer it with ``simulator.script(...)``; inspect ``simulator.stats()``.
- ``start_simulator``: a factory for other configs,
  ``sim = await start_simulator(rpm=60, faults={"429": 0.1})`` or
  ``await start_simulator(SimulatorConfig(...), clock=fake_clock)``; all stop at teardown.
- ``simulator_process``: the API URL (``http://127.0.0.1:PORT/v1``) of a real
  ``python -m fanwise.simulator --port 0`` subprocess, for tests of the CLI and of processes.
- ``spawn_simulator``: the factory behind it, taking extra command-line flags,
  ``spawn_simulator("--fail", "500=1")``; it returns a ``SimulatorProcess``.
"""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from fanwise.engine import Engine
from fanwise.models.base import Model
from fanwise.simulator import Simulator, SimulatorConfig

STARTUP_TIMEOUT = 20.0  # seconds a simulator subprocess may take to print its URL


@pytest.fixture(autouse=True)
def fanwise_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own ``$FANWISE_HOME``: no journal or price file lands in the user's."""
    home = tmp_path_factory.mktemp("fanwise-home")
    monkeypatch.setenv("FANWISE_HOME", str(home))
    return home


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    """An in-process simulator that answers at once and never fails."""
    async with Simulator() as sim:
        yield sim


class StartSimulator(Protocol):
    def __call__(
        self, config: SimulatorConfig | None = None, /, **options: Any
    ) -> Awaitable[Simulator]: ...


@pytest.fixture
async def start_simulator() -> AsyncIterator[StartSimulator]:
    """Start in-process simulators: pass a ``SimulatorConfig`` or its fields as keywords.

    ``clock`` (and ``host``/``port``) go to ``Simulator`` itself rather than the config.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def start(config: SimulatorConfig | None = None, /, **options: Any) -> Simulator:
            server_options = {k: options.pop(k) for k in ("clock", "host", "port") if k in options}
            if config is None:
                config = SimulatorConfig(**options)
            elif options:
                raise TypeError("pass either a SimulatorConfig or its fields, not both")
            return await stack.enter_async_context(Simulator(config, **server_options))

        yield start


@dataclass(frozen=True)
class SimulatorProcess:
    """A running ``python -m fanwise.simulator``; ``base_url`` ends in ``/v1``."""

    base_url: str
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return self.base_url.removesuffix("/v1")


@pytest.fixture
def spawn_simulator() -> Iterator[Callable[..., SimulatorProcess]]:
    """Start simulator subprocesses with extra CLI flags; each is stopped at teardown."""
    running: list[subprocess.Popen[bytes]] = []

    def spawn(*flags: str) -> SimulatorProcess:
        command = [sys.executable, "-m", "fanwise.simulator", "--port", "0", *flags]
        with tempfile.TemporaryFile() as stderr:  # the child keeps writing to it after we close
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
            running.append(process)
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT)
            line = process.stdout.readline().decode() if ready else ""
            if not line.startswith("fanwise simulator listening on "):
                process.kill()
                process.wait()
                stderr.seek(0)
                pytest.fail(f"simulator did not start: {line!r}\n{stderr.read().decode()}")
        return SimulatorProcess(line.split()[-1], process)

    yield spawn
    for process in running:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def simulator_process(spawn_simulator: Callable[..., SimulatorProcess]) -> str:
    """The API URL of a simulator subprocess with the default flags."""
    return spawn_simulator().base_url


class OnApi(Model):
    """A model that sends each prompt-style request to ``api``'s endpoint instead.

    A request now names its own endpoint; tests written once for both APIs build their
    requests with ``Request.text`` and pick the API here, as ``--api chat`` does for the CLI.
    """

    def __init__(self, model: Any, api: str) -> None:
        self.model = model
        self.api = api

    @property
    def name(self) -> str:
        return str(self.model.name)

    @property
    def client(self) -> Any:
        return self.model.client

    async def complete(self, request: Any, *, on_delta: Any = None) -> Any:
        from fanwise.models.base import Endpoint, Request

        if self.api != "responses":
            request = Request.text(
                request.prompt,
                model=request.model,
                instructions=request.instructions,
                reasoning_effort=request.reasoning_effort,
                max_output_tokens=request.max_output_tokens,
                temperature=request.body.get("temperature"),
                endpoint=Endpoint.parse(self.api),
            )
        return await self.model.complete(request, on_delta=on_delta)

    async def aclose(self) -> None:
        await self.model.aclose()


BATCH_DISPATCH = ("api", "limits", "polling", "ledger", "retry_with")
"""``BatchAPI``'s own options; the rest are the ``Engine``'s."""


def batch_engine(model: Model, *, batches: Any, **options: Any) -> Engine:
    """An ``Engine`` whose dispatch is the Batch API, as ``open_run`` makes one for a config's
    ``engine="batch"`` (tests build it by hand to reach its parts)."""
    from fanwise.batchapi import BatchAPI

    sent = {name: options.pop(name) for name in BATCH_DISPATCH if name in options}
    engine = Engine(model, **options)
    engine.dispatch = BatchAPI(batches, engine.live, **sent)
    return engine
