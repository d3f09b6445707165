"""Running the real ``fanwise`` command in a child process, as a user's shell would, and
killing one with -9 at the moment a crash test wants."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

Env = Mapping[str, str | None]


def run_fanwise(
    *args: str, env: Env | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m fanwise ARGS`` to completion; ``env`` adds variables, and a None removes one."""
    return subprocess.run(
        [sys.executable, "-m", "fanwise", *args],
        capture_output=True,
        text=True,
        env=_environ(env),
        timeout=timeout,
        check=False,
    )


def start_fanwise(*args: str, env: Env | None = None) -> subprocess.Popen[str]:
    """``python -m fanwise ARGS`` left running, unbuffered, its output piped; ``env`` as above."""
    return subprocess.Popen(
        [sys.executable, "-m", "fanwise", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environ({"PYTHONUNBUFFERED": "1", **(env or {})}),
    )


def kill_once_submitted(
    process: subprocess.Popen[str], journal: Path, *, within: float, then: float = 0.0
) -> None:
    """Wait until ``journal`` records a submitted batch (failing after ``within`` seconds, or if
    the process ends first), ``then`` seconds more, and kill the process with -9."""
    deadline = time.monotonic() + within
    while not batch_submitted(journal):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, f"no batch submitted within {within} s"
        time.sleep(0.05)
    time.sleep(then)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)


def batch_submitted(journal: Path) -> bool:
    """The journal (read by another process while it is written) has a submitted batch."""
    if not journal.exists():
        return False
    db = sqlite3.connect(journal, timeout=10)
    try:
        row = db.execute("SELECT COUNT(*) FROM batches WHERE state = 'submitted'").fetchone()
    except sqlite3.OperationalError:  # not migrated yet
        return False
    finally:
        db.close()
    return bool(row[0])


def _environ(env: Env | None) -> dict[str, str]:
    environ = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return environ
