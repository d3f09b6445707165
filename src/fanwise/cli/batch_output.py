"""Where ``fanwise batch`` writes its result lines, and how a resume keeps what ``-o`` held.

A resume once truncated ``-o`` as it started: when the journal had failed, that file held the
only copy of thousands of paid answers, and a resume killed a second in destroyed them. Now a
resume first reads ``-o`` and records in the journal every answer it holds that the journal
lacks (``recover``), so none is paid again; then it writes to a temporary file beside ``-o``,
renamed over it only at the end. A run that ends whole replaces the file; one that ends early
(Ctrl-C, a journal failure) first copies in the old lines of every ``custom_id`` it did not
write; a kill leaves ``-o`` as it was. A new run (not a resume) writes ``-o`` directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fanwise.batch import LineError, LineReader
from fanwise.batch.sink import LineSink, open_file
from fanwise.calls import Call
from fanwise.cli.errors import InputError
from fanwise.journal import Journal
from fanwise.models.bodies import READERS
from fanwise.outcome import CallError, Fulfilled
from fanwise.schemas import body_schema


@dataclass
class BatchOutput:
    """The sink the result lines go to; for a resume over an existing ``-o``, the temporary
    file (``temp``) that replaces it (``previous``) at the end."""

    sink: LineSink
    path: Path | None = None
    temp: Path | None = None
    whole: bool = False
    """Set by the caller once the run ended as it should: the temporary file replaces -o."""

    @property
    def previous(self) -> Path | None:
        """The ``-o`` a resume found, which it must not lose."""
        return self.path if self.temp is not None else None

    def finish(self) -> None:
        """Put the temporary file in place (see the module's docstring)."""
        if self.temp is None or self.path is None:
            return
        try:
            if self.sink.error is not None:  # not written whole: -o stays as it was
                self.temp.unlink(missing_ok=True)
                return
            if not self.whole:
                _copy_missing(self.path, self.temp)
            os.replace(self.temp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                self.temp.unlink(missing_ok=True)


@contextlib.contextmanager
def batch_output(path: str | None, *, resume: bool) -> Iterator[BatchOutput]:
    """The output of a batch: stdout, ``-o`` itself, or (a resume over an existing ``-o``) a
    temporary file beside it."""
    if path is None:
        yield BatchOutput(LineSink(stream=sys.stdout))
        return
    target = Path(path)
    temp = (
        target.with_name(f".{target.name}.fanwise-resume") if resume and target.exists() else None
    )
    try:
        fd = open_file(str(temp or target))
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write: {exc.strerror}") from None
    output = BatchOutput(LineSink(fd=fd), target, temp)
    try:
        yield output
    finally:
        os.close(fd)
        output.finish()


def _copy_missing(old: Path, new: Path) -> None:
    """Append to ``new`` the lines of ``old`` whose ``custom_id`` ``new`` has no line for."""
    written = {_custom_id(raw) for raw in _lines(new)}
    with new.open("ab") as out:
        for raw in _lines(old):
            custom_id = _custom_id(raw)
            if custom_id is not None and custom_id not in written:
                out.write(raw if raw.endswith(b"\n") else raw + b"\n")
                written.add(custom_id)


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as lines:
        yield from lines


def _custom_id(raw: bytes) -> str | None:
    record = _record(raw)
    value = None if record is None else record.get("custom_id")
    return value if isinstance(value, str) else None


def _record(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except ValueError:  # a torn line (an older fanwise, a full disk)
        return None
    return record if isinstance(record, dict) else None


def recover(
    output: Path,
    source: Path,
    journal: Journal,
    run_id: int,
    reader: LineReader,
    *,
    validate: bool = False,
) -> int:
    """Record in run ``run_id`` every answer ``output`` holds that the journal lacks (a journal
    that failed, a crash between the line and its commit), so the resume reuses it rather than
    paying for it again; return how many. Raises ``InputError`` if the journal cannot take
    them (then nothing is sent, and ``-o`` is left as it was)."""
    have = {
        label
        for (label,) in journal.db.execute(
            "SELECT DISTINCT label FROM calls WHERE run_id = ? AND status = 'fulfilled'", (run_id,)
        )
    }
    found: dict[str, dict[str, Any]] = {}
    for raw in _lines(output):
        record = _record(raw)
        if record is None:
            continue
        custom_id, response = record.get("custom_id"), record.get("response")
        if (
            isinstance(custom_id, str)
            and custom_id not in have
            and isinstance(response, dict)
            and response.get("status_code") == 200
            and isinstance(response.get("body"), dict)
        ):
            found[custom_id] = record
    if not found:
        return 0
    recovered = 0
    try:
        with journal.transaction():
            for index, number, call in _calls(source, reader, validate):
                record = found.pop(call.label, None)
                if record is None:
                    continue
                outcome = _answer(call, record)
                if outcome is None:
                    continue
                figures = record.get("fanwise")
                cost = figures.get("cost_usd") if isinstance(figures, dict) else None
                cost = float(cost) if isinstance(cost, int | float) else None
                journal.record_call(run_id, index, call, outcome, cost=cost, line=number)
                recovered += 1
                if not found:
                    break
    except sqlite3.Error as exc:
        raise InputError(
            f"the journal cannot record the answers --out {output} holds ({exc}); nothing was "
            "sent and the file is as it was"
        ) from None
    return recovered


def _calls(source: Path, reader: LineReader, validate: bool) -> Iterator[tuple[int, int, Call]]:
    """The input's calls as ``run_batch`` numbers them: (index, input line, call)."""
    index = 0
    with source.open("rb") as lines:
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                item = reader.read(text, number)
            except LineError:
                continue
            request = item.request
            schema = body_schema(request.endpoint, request.body) if validate else None
            yield index, number, Call(request, label=item.custom_id, schema=schema)
            index += 1


def _answer(call: Call, record: dict[str, Any]) -> Fulfilled[Any] | None:
    """The answer an output line holds, read as a live answer is (None if it does not read)."""
    response = record["response"]
    body = response["body"]
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    request_id = response.get("request_id")
    headers = {"x-request-id": str(request_id)} if request_id else {}
    try:
        completion = READERS[call.request.endpoint](dict(body), raw, headers)
    except (CallError, KeyError, ValueError, TypeError):
        return None
    return Fulfilled(completion)


__all__ = ["BatchOutput", "batch_output", "recover"]
