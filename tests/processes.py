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


FAILING = """
import errno, os, sqlite3, sys

journal_after, output_after = (None if a == "-" else int(a) for a in sys.argv[1:3])
sys.argv = ["fanwise", *sys.argv[3:]]
if journal_after is not None:  # a journal on a full disk: every write after N call rows fails
    from fanwise.journal import writer

    execute, rows = writer.Writer._execute, [0]

    def full_journal(self, db, item, pending):
        calls = sum(1 for table, _ in item if table.calls)
        rows[0] += calls
        if rows[0] > journal_after:
            full = sqlite3.OperationalError("database or disk is full")
            self._failed(db, pending + calls, full)
            return 0
        return execute(self, db, item, pending)

    writer.Writer._execute = full_journal
if output_after is not None:  # an output on a full disk: the line past N bytes is torn, ENOSPC
    from fanwise.batch import sink

    write = sink.LineSink._write

    def full_output(self, fd, data):
        if self.size + len(data) > output_after:
            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write(self, fd, data)

    sink.LineSink._write = full_output
from fanwise.cli import main

main()
"""


def start_failing_fanwise(
    *args: str,
    journal_fails_after: int | None = None,
    output_fails_after: int | None = None,
    env: Env | None = None,
) -> subprocess.Popen[str]:
    """``start_fanwise`` on a disk that fills up: the journal's writes fail after that many call
    rows, or the output's after that many bytes (the line that passes it is torn in half)."""
    limits = [str(n) if n is not None else "-" for n in (journal_fails_after, output_fails_after)]
    return subprocess.Popen(
        [sys.executable, "-c", FAILING, *limits, *args],
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
