"""Where a run's Batch API jobs are written down, so that a resume finds them again.

A job is written the moment its input file is uploaded, before the batch is created; it gets
its batch id as soon as the batch exists, and is marked collected once its results are in the
journal. So whatever moment the process dies at, ``fanwise resume`` on any machine with the
journal knows which batches to collect and which calls they carry, and never pays twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from fanwise.journal import Journal


@dataclass(frozen=True, slots=True)
class Job:
    """One input file and the batch made from it (``batch_id`` is None until it exists)."""

    row: int
    input_file_id: str
    endpoint: str
    calls: tuple[tuple[int, str], ...]
    batch_id: str | None = None


class Ledger(Protocol):
    """The engine's record of its Batch API jobs."""

    def open_jobs(self) -> list[Job]: ...

    def uploaded(
        self, input_file_id: str, endpoint: str, calls: Sequence[tuple[int, str]]
    ) -> Job: ...

    def submitted(self, job: Job, batch_id: str) -> Job: ...

    def seen(self, job: Job, api_status: str) -> None: ...

    def closed(self, job: Job, state: str) -> None:
        """``collected`` (results journaled) or ``abandoned`` (the batch could not be made)."""
        ...


class JournalLedger:
    """The ledger of one run, in the journal's ``batches`` table."""

    def __init__(
        self, journal: Journal, run_id: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self.clock = clock

    def open_jobs(self) -> list[Job]:
        rows = self.journal.db.execute(
            "SELECT id, input_file_id, endpoint, calls, batch_id FROM batches"
            " WHERE run_id = ? AND state IN ('uploaded', 'submitted') ORDER BY id",
            (self.run_id,),
        ).fetchall()
        return [
            Job(row, file_id, endpoint, tuple((int(i), str(k)) for i, k in json.loads(calls)), bid)
            for row, file_id, endpoint, calls, bid in rows
        ]

    def uploaded(self, input_file_id: str, endpoint: str, calls: Sequence[tuple[int, str]]) -> Job:
        now = self.clock()
        cursor = self.journal.db.execute(
            "INSERT INTO batches (run_id, input_file_id, endpoint, calls, state, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, 'uploaded', ?, ?)",
            (self.run_id, input_file_id, endpoint, json.dumps(list(calls)), now, now),
        )
        assert cursor.lastrowid is not None
        return Job(cursor.lastrowid, input_file_id, endpoint, tuple(calls))

    def submitted(self, job: Job, batch_id: str) -> Job:
        self._update(job, "state = 'submitted', batch_id = ?", batch_id)
        return Job(job.row, job.input_file_id, job.endpoint, job.calls, batch_id)

    def seen(self, job: Job, api_status: str) -> None:
        self._update(job, "api_status = ?", api_status)

    def closed(self, job: Job, state: str) -> None:
        self._update(job, "state = ?", state)

    def pace(self) -> tuple[float, int] | None:
        """The pace of the journal's recent batches (``recent_pace``): an auto run's prior."""
        return recent_pace(self.journal)

    def _update(self, job: Job, assignment: str, value: str) -> None:
        self.journal.db.execute(
            f"UPDATE batches SET {assignment}, updated_at = ? WHERE id = ?",
            (value, self.clock(), job.row),
        )


def recent_pace(journal: Journal, limit: int = 20) -> tuple[float, int] | None:
    """Lines a second the journal's last ``limit`` completed batches ran at (their lines over
    the time from upload to collection), and how many batches that is; None without any."""
    rows = journal.db.execute(
        "SELECT calls, created_at, updated_at FROM batches WHERE state = 'collected'"
        " AND api_status = 'completed' ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    lines = sum(len(json.loads(calls)) for calls, _, _ in rows)
    seconds = sum(max(0.0, ended - made) for _, made, ended in rows)
    if not rows or seconds <= 0:
        return None
    return lines / seconds, len(rows)


class NoLedger:
    """A ledger that forgets: batches are collected only by the process that made them."""

    def open_jobs(self) -> list[Job]:
        return []

    def uploaded(self, input_file_id: str, endpoint: str, calls: Sequence[tuple[int, str]]) -> Job:
        return Job(0, input_file_id, endpoint, tuple(calls))

    def submitted(self, job: Job, batch_id: str) -> Job:
        return Job(job.row, job.input_file_id, job.endpoint, job.calls, batch_id)

    def seen(self, job: Job, api_status: str) -> None:
        return None

    def closed(self, job: Job, state: str) -> None:
        return None


__all__ = ["Job", "JournalLedger", "Ledger", "NoLedger", "recent_pace"]
