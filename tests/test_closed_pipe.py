"""A reader that goes away (``fanwise ... | head``) is not a crash, for every command.

Each command runs as a real process whose stdout is a pipe closed early: no traceback, exit 0
or 141, the calls already paid for kept in the journal, the run's status true.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import run_fanwise

OFFLINE = {"OPENAI_API_KEY": None, "ANTHROPIC_API_KEY": None, "GEMINI_API_KEY": None}
CLOSED_PIPE = 141


def fanwise_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m fanwise ARGS`` whose stdout is a pipe nobody reads (its reader closed)."""
    read, write = os.pipe()
    os.close(read)
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE}
    try:
        return subprocess.run(
            [sys.executable, "-m", "fanwise", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)


def head(lines: int, *args: str) -> tuple[list[str], int, str]:
    """``python -m fanwise ARGS | head -LINES``: the lines read, the exit code and stderr."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE}
    process = subprocess.Popen(
        [sys.executable, "-m", "fanwise", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    read = [process.stdout.readline() for _ in range(lines)]
    process.stdout.close()
    err = process.stderr.read()
    return read, process.wait(timeout=60), err


def batch_file(tmp_path: Path, lines: int) -> Path:
    path = tmp_path / "lines.jsonl"
    path.write_text("".join(f'{{"prompt": "Question {n} about the sea?"}}\n' for n in range(lines)))
    return path


def run_rows(journal: Path) -> list[tuple[int, str]]:
    db = sqlite3.connect(journal)
    try:
        return db.execute("SELECT id, status FROM runs ORDER BY id").fetchall()
    finally:
        db.close()


def fulfilled_calls(journal: Path) -> int:
    db = sqlite3.connect(journal)
    try:
        return int(
            db.execute("SELECT count(*) FROM calls WHERE status = 'fulfilled'").fetchone()[0]
        )
    finally:
        db.close()


def assert_quiet(code: int, stderr: str) -> None:
    assert code in (0, CLOSED_PIPE), stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert "BrokenPipeError" not in stderr, stderr


def test_batch_into_head_stops_as_an_interrupted_run(tmp_path: Path) -> None:
    """``batch FILE | head -2``: two lines read, exit 141, the run interrupted (not left
    running), every call that settled kept in the journal, and the resume line on stderr."""
    journal = tmp_path / "journal.db"
    source = batch_file(tmp_path, 400)
    flags = ("--offline-latency", "0.01,0.03", "-c", "4", "--journal", str(journal), "--plain")
    read, code, stderr = head(2, "batch", str(source), *flags)
    assert all(line.startswith("{") for line in read)
    assert_quiet(code, stderr)
    assert code == CLOSED_PIPE
    [(run_id, status)] = run_rows(journal)
    assert status == "interrupted"
    assert f"fanwise resume {run_id}" in stderr
    assert 2 <= fulfilled_calls(journal) < 400


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """A journal holding one finished batch run of 60 calls (run 1)."""
    path = tmp_path / "journal.db"
    source = batch_file(tmp_path, 60)
    result = run_fanwise(
        "batch", str(source), "--offline-latency", "0,0.001", "--journal", str(path), "--quiet",
        "-o", str(tmp_path / "out.jsonl"), env=OFFLINE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return path


@pytest.mark.parametrize(
    "command",
    [["runs"], ["export", "1"], ["show", "1"], ["show", "1", "--json"]],
    ids=" ".join,
)
def test_a_reading_command_into_a_closed_pipe_is_quiet(journal: Path, command: list[str]) -> None:
    """``runs``, ``export RUN``, ``show RUN`` into a closed pipe: no traceback, exit 0 or 141,
    and the run they read is left as it was."""
    result = fanwise_into_closed_pipe(*command, "--journal", str(journal))
    assert_quiet(result.returncode, result.stderr)
    assert run_rows(journal) == [(1, "complete")]


@pytest.mark.parametrize("command", [["export", "1"], ["show", "1"]], ids=" ".join)
def test_a_reading_command_into_head_is_quiet(journal: Path, command: list[str]) -> None:
    """``export RUN | head -1`` and ``show RUN | head -1``: one line read, then a quiet end."""
    read, code, stderr = head(1, *command, "--journal", str(journal))
    assert read[0].strip()
    assert_quiet(code, stderr)


@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_travel_into_a_closed_pipe_finishes_its_run(tmp_path: Path, stream: str) -> None:
    """``travel | head``: the guide is made and journaled whatever happens to stdout; the run is
    complete, the exit quiet (0 when streamed: the stream stops writing; else 141)."""
    journal = tmp_path / "journal.db"
    flags = ("--offline-latency", "0,0.001", "--journal", str(journal), "--plain", stream)
    result = fanwise_into_closed_pipe("travel", "Kyoto", *flags)
    assert_quiet(result.returncode, result.stderr)
    assert run_rows(journal) == [(1, "complete")]


OUTPUT_FAILED = 6


def fanwise_into_full_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m fanwise ARGS > /dev/full``: every write to stdout fails (no space left)."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE}
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-m", "fanwise", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )


def assert_one_line(result: subprocess.CompletedProcess[str], where: str = "") -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == OUTPUT_FAILED, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fanwise: error: cannot write stdout (No space left on device)")
    assert lines[0].endswith(where), lines[0]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("flags", [["--stream"], ["--no-stream"], ["--json"]], ids=" ".join)
def test_travel_into_a_full_stdout_keeps_its_answer_and_says_so(
    tmp_path: Path, flags: list[str]
) -> None:
    """``travel > /dev/full``: the guide is made and the run journaled complete; one line says
    stdout failed and where the result is kept, and the exit is 6."""
    journal = tmp_path / "journal.db"
    base = ("--offline-latency", "0,0.001", "--journal", str(journal), "--quiet")
    result = fanwise_into_full_stdout("travel", "Kyoto", *base, *flags)
    assert_one_line(result, f"fanwise show 1 --journal {journal}")
    assert run_rows(journal) == [(1, "complete")]
    db = sqlite3.connect(journal)
    try:
        assert db.execute("SELECT count(*) FROM calls WHERE status = 'rejected'").fetchone()[0] == 0
    finally:
        db.close()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize(
    "command",
    [["runs"], ["export", "1"], ["show", "1"], ["show", "1", "--json"]],
    ids=" ".join,
)
def test_a_reading_command_into_a_full_stdout_says_so_once(
    journal: Path, command: list[str]
) -> None:
    """``runs``, ``export RUN``, ``show RUN`` > /dev/full: one line with the cause, exit 6."""
    assert_one_line(fanwise_into_full_stdout(*command, "--journal", str(journal)))
    assert run_rows(journal) == [(1, "complete")]
