"""Inputs read from files or standard input: ``-q @questions.txt``, ``--questions-file``,
``fanwise batch -``.

Standard input can be read only once, and a batch is read twice (a first pass counts its lines)
and again by ``fanwise resume``. So ``batch -`` copies standard input, streamed in flat memory,
to a file under ``$FANWISE_HOME/inputs/`` and runs on that file; the run's spec names it. With
the journal off there is no resume: the copy is a private temporary file, deleted after the run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from fanwise.cli.errors import InputError
from fanwise.context import Material
from fanwise.paths import fanwise_home

STDIN = "-"


def spool_stdin(
    stream: IO[bytes] | None = None,
    environ: Mapping[str, str] = os.environ,
    *,
    temporary: bool = False,
) -> Path:
    """Copy standard input to a new file under ``$FANWISE_HOME/inputs/`` (or, ``temporary``,
    a private temporary file); return its path."""
    source = stream if stream is not None else sys.stdin.buffer
    folder = Path(tempfile.gettempdir()) if temporary else fanwise_home(environ) / "inputs"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = f"stdin-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-"
        fd, name = tempfile.mkstemp(prefix=stamp, suffix=".jsonl", dir=folder)  # mode 0600
        with os.fdopen(fd, "wb") as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
    except OSError as exc:
        raise InputError(f"cannot keep standard input in {folder}: {exc.strerror}") from None
    return Path(name)


def read_questions(values: Iterable[str], files: Iterable[str] = ()) -> tuple[str, ...]:
    """The questions of ``-q`` (each ``@FILE`` read one question a line) and of
    ``--questions-file FILE``, in order; ``-`` as a file is standard input."""
    questions: list[str] = []
    for value in values:
        if value.startswith("@") and len(value) > 1:
            questions += _lines_of(f"-q {value}", value[1:])
        else:
            if not value.strip():
                raise InputError("--question: a question must not be empty")
            questions.append(value)
    for name in files:
        questions += _lines_of(f"--questions-file {name}", name)
    return tuple(questions)


def _lines_of(flag: str, name: str) -> list[str]:
    """The non-blank lines of a questions file, stripped; one clean error if unreadable."""
    text = _text_of(flag, name)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{flag}: no questions in it (one question a line)")
    return lines


def read_context(names: Iterable[str]) -> tuple[Material, ...]:
    """The files of ``--context FILE`` (``-``: standard input), each whole, in order."""
    materials = []
    for name in names:
        flag = f"--context {name}"
        text = "\n".join(_text_of(flag, name).splitlines())
        if not text.strip():
            raise InputError(f"{flag}: the file is empty")
        materials.append(Material("stdin" if name == STDIN else Path(name).name, text))
    return tuple(materials)


def _text_of(flag: str, name: str) -> str:
    """A file's UTF-8 text; one clean error if it cannot be read."""
    try:
        data = sys.stdin.buffer.read() if name == STDIN else Path(name).read_bytes()
    except IsADirectoryError:
        raise InputError(f"{flag}: is a directory, not a file") from None
    except FileNotFoundError:
        raise InputError(f"{flag}: no such file") from None
    except OSError as exc:
        raise InputError(f"{flag}: cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{flag}: line {line} is not UTF-8 text") from None
