"""Keeping the journal small: prune old runs (then ``VACUUM``), and export a run as JSONL.

Calls are only ever appended, so without pruning the journal grows with every run (two runs
with a 5 MB batch line made a 12 MB file). ``prune`` deletes whole runs, their calls and their
Batch API jobs, in one transaction, then ``VACUUM`` gives the space back to the file system.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from fanwise.journal.db import Journal


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a prune removed, and the file's size before and after."""

    runs: int
    calls: int
    bytes_before: int
    bytes_after: int


def prune(
    journal: Journal,
    *,
    before: float | None = None,
    keep: int | None = None,
    spare: Collection[int] = (),
) -> Pruned:
    """Delete the runs started before ``before`` (a timestamp) and those past the ``keep``
    newest; never the runs in ``spare`` (still running). With neither bound, nothing goes."""
    if keep is not None and keep < 0:
        raise ValueError("keep must be >= 0")
    doomed: set[int] = set()
    if before is not None:
        rows = journal.db.execute("SELECT id FROM runs WHERE started_at < ?", (before,))
        doomed.update(row[0] for row in rows)
    if keep is not None:
        rows = journal.db.execute("SELECT id FROM runs ORDER BY id DESC LIMIT -1 OFFSET ?", (keep,))
        doomed.update(row[0] for row in rows)
    doomed.difference_update(spare)
    size_before = _size(journal)
    calls = 0
    if doomed:
        ids = sorted(doomed)
        marks = ", ".join("?" * len(ids))
        journal.db.execute("BEGIN IMMEDIATE")
        try:
            calls = journal.db.execute(f"DELETE FROM calls WHERE run_id IN ({marks})", ids).rowcount
            journal.db.execute(f"DELETE FROM batches WHERE run_id IN ({marks})", ids)
            journal.db.execute(f"DELETE FROM sent WHERE run_id IN ({marks})", ids)
            journal.db.execute(f"DELETE FROM runs WHERE id IN ({marks})", ids)
        except BaseException:
            journal.db.execute("ROLLBACK")
            raise
        journal.db.execute("COMMIT")
        journal.db.execute("VACUUM")
        journal.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Pruned(len(doomed), calls, size_before, _size(journal))


def export_run(journal: Journal, run_id: int) -> Iterator[str]:
    """Run ``run_id`` as JSONL lines: the run first (a workflow's with its ``result``, the
    document ``show --json`` prints), then each call's latest outcome in index order, read
    lazily so a large batch run streams out in flat memory."""
    record = journal.run(run_id)
    if record is None:
        raise LookupError(run_id)
    run: dict[str, Any] = {
        "type": "run",
        **record.to_dict(),
        "endpoint": record.endpoint,
        "spec": record.spec,
    }
    if record.kind in ("workflow", "stages"):  # the document show --json prints, calls read twice
        from fanwise.journal.results import rebuild_result

        rebuilt = rebuild_result(record, journal.latest_calls(run_id))
        if rebuilt is not None:
            run["result"] = rebuilt.to_dict()
    yield _line(run)
    for call in journal.latest_calls(run_id):
        yield _line(
            {
                "type": "call",
                "index": call.index,
                "custom_id": call.label,
                "key": call.key,
                "request": call.request.to_dict(),
                **call.outcome.to_dict(),
                "cost_usd": call.cost,
                "recorded_at": call.recorded_at,
            }
        )


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False) + "\n"


def _size(journal: Journal) -> int:
    """The database file and its write-ahead log, in bytes."""
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += journal.path.with_name(journal.path.name + suffix).stat().st_size
    return total
