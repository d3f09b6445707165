"""``python -m fanwise.simulator`` in its own process, for the benchmarks that measure against it.

Imported by its neighbours (``fanout.py``, ``fanout_profile.py``, ``limits_matrix.py``), which
run as scripts from this folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any


class Simulator:
    """A simulator answering after ``latency`` seconds (and ``flags``); its control endpoints."""

    def __init__(self, latency: float, *flags: str) -> None:
        command = [sys.executable, "-m", "fanwise.simulator", "--port", "0"]
        command += ["--latency", str(latency), *flags]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line.startswith("fanwise simulator listening on "):
            self.process.kill()
            raise SystemExit(f"the simulator did not start: {line!r}")
        self.base_url = line.split()[-1]
        self.root = self.base_url.removesuffix("/v1")

    def reset(self) -> None:
        """Forget the statistics and refill the buckets."""
        request = urllib.request.Request(f"{self.root}/_control/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stats(self) -> dict[str, Any]:
        """The server's statistics since the last reset (``/_stats``)."""
        with urllib.request.urlopen(f"{self.root}/_stats", timeout=10) as response:
            stats: dict[str, Any] = json.loads(response.read())
        return stats

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
