"""The journal's schema, as numbered migrations applied in order, each exactly once.

``PRAGMA user_version`` holds the number of migrations applied. A migration is a function of the
connection; append new ones, never edit an old one: a journal written by any earlier fanwise
must open with a later one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from fanwise.outcome import FanwiseError


class JournalError(FanwiseError):
    """The journal cannot be used: unreadable, or written by a newer fanwise."""


def m001_runs_and_calls(db: sqlite3.Connection) -> None:
    """Runs, and the calls of each run, one row per settled call."""
    db.execute(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            topic TEXT NOT NULL,
            spec TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            total INTEGER,
            status TEXT NOT NULL,
            reason TEXT,
            summary TEXT,
            started_at REAL NOT NULL,
            ended_at REAL,
            pid INTEGER
        )
        """
    )
    db.execute(
        """
        CREATE TABLE calls (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            idx INTEGER NOT NULL,
            key TEXT NOT NULL,
            label TEXT NOT NULL,
            request TEXT NOT NULL,
            status TEXT NOT NULL,
            outcome TEXT NOT NULL,
            error_kind TEXT,
            attempts INTEGER NOT NULL,
            latency REAL NOT NULL,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL,
            cached INTEGER NOT NULL DEFAULT 0,
            recorded_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX calls_by_run ON calls(run_id, idx)")
    db.execute("CREATE INDEX calls_by_key ON calls(key) WHERE status = 'fulfilled'")


def m002_batches(db: sqlite3.Connection) -> None:
    """Batch API jobs of a run (``--engine batch``), so a resume collects them, even elsewhere.

    A row is written when the input file is uploaded (``state`` uploaded, ``batch_id`` NULL),
    gets its batch id once the batch exists (submitted), and is collected once its results are
    in the calls table (or abandoned if the batch could not be made). Its ``calls`` column is
    the JSON list of ``[index, key]`` the file asks for.
    """
    db.execute(
        """
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            input_file_id TEXT NOT NULL,
            batch_id TEXT,
            endpoint TEXT NOT NULL,
            calls TEXT NOT NULL,
            state TEXT NOT NULL,
            api_status TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX batches_by_run ON batches(run_id, state)")


def m003_run_content(db: sqlite3.Connection) -> None:
    """What each run's rows hold: ``full`` text, or ``meta`` only (``--journal-content``).

    Earlier runs kept everything, hence the default. Cache and resume read only ``full`` runs.
    """
    db.execute("ALTER TABLE runs ADD COLUMN content TEXT NOT NULL DEFAULT 'full'")


def m004_call_bodies(db: sqlite3.Connection) -> None:
    """Whole bodies, compressed: the request as sent and the server's response as it came.

    ``request_body`` is the JSON body (``calls.request`` then holds only the endpoint);
    ``response_body`` the bytes of the answer; each zlib-compressed unless under 256 bytes.
    Rows written before this migration have neither and read as before (a prompt-style
    request, no raw body).
    """
    db.execute("ALTER TABLE calls ADD COLUMN request_body BLOB")
    db.execute("ALTER TABLE calls ADD COLUMN response_body BLOB")


def m005_call_line(db: sqlite3.Connection) -> None:
    """A batch call's input line (``fanwise show RUN --jsonl`` gives it back): blank and bad
    lines are skipped, so a call's index is not its line. NULL for other runs, and for calls
    journaled before this migration."""
    db.execute("ALTER TABLE calls ADD COLUMN line INTEGER")


def m006_sent_marks(db: sqlite3.Connection) -> None:
    """The write-ahead intent: a mark for each call whose request is going out, committed
    before the request and answered by the call's own row recorded after it. After a crash the
    marks with no answer are the calls that may have been paid for with no answer kept; a
    resume adds them to its run's ``unanswered`` (with their estimated cost,
    ``unanswered_usd``) and sends them again."""
    db.execute(
        """
        CREATE TABLE sent (
            run_id INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            key TEXT NOT NULL,
            estimate REAL,
            sent_at REAL NOT NULL,
            PRIMARY KEY (run_id, idx)
        ) WITHOUT ROWID
        """
    )
    db.execute("ALTER TABLE runs ADD COLUMN unanswered INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE runs ADD COLUMN unanswered_usd REAL NOT NULL DEFAULT 0")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    m001_runs_and_calls,
    m002_batches,
    m003_run_content,
    m004_call_bodies,
    m005_call_line,
    m006_sent_marks,
)


def migrate(db: sqlite3.Connection) -> int:
    """Apply the migrations this journal lacks, in one write transaction; return the version.

    ``BEGIN IMMEDIATE`` takes the write lock before reading the version, so two processes
    opening a blank journal at once cannot both create the tables.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        _check_known(version)
        for migration in MIGRATIONS[version:]:
            migration(db)
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return len(MIGRATIONS)


def _check_known(version: int) -> None:
    if version > len(MIGRATIONS):
        raise JournalError(
            f"the journal is at schema version {version}, newer than this fanwise knows "
            f"({len(MIGRATIONS)}): upgrade fanwise, or use another journal file"
        )
