"""The journal's writer thread: call rows written and committed off the event loop.

A locked journal (another process holding ``BEGIN IMMEDIATE``) or a slow disk used to stop the
whole event loop while SQLite waited: no request went out, the live view froze, timeouts did not
fire. Now the loop only collects each pass's rows, already serialised, and hands them over once
a pass (a ``call_soon`` callback, or the engine asking for the commit); a thread with its own
connection inserts them and commits when the engine asks whether everything so far is committed
(``committed``): the engine asks before each call's request goes out, so a call settled in one
pass is committed, with the sent marks of the calls about to start, before the slot it freed
sends its next request. When nobody asks, the thread commits after ``IDLE_COMMIT`` seconds with
nothing new, so it never holds the write lock long.

The rows of a pass go in as one multi-row ``INSERT`` per table (``VALUES (...), (...)``, in
chunks of powers of two, so a handful of prepared statements serve every size): each SQLite
step releases the GIL, and a thread that must take the GIL back from a busy event loop waits up
to the interpreter's switch interval (5 ms) each time. One step a table a pass, not one a row,
kept the CLI's overhead within its bound (docs/benchmarks.md).

A batch that fails (a full disk) rolls back the transaction it was in; the calls whose rows it
held are counted in ``unwritten``, the first error is kept in ``error`` and reported once, on
the loop's thread, to ``on_error``; every later ``committed`` future holds that error. The
thread goes on trying each later transaction (a lock that outlasted the busy timeout may have
been released): it is the store that decides whether the run stops.

The queue is bounded: the engine waits for a commit before each launch, so the calls in flight
bound what is queued; the bound only holds back a run that hands over thousands of passes while
the thread waits on a lock, and then the loop waits for the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

QUEUE_SIZE = 1_000
IDLE_COMMIT = 0.05
"""Seconds with nothing queued after which an open transaction is committed unasked."""
CHUNKS = (256, 64, 16, 4, 1)
"""Rows per multi-row ``INSERT``: a pass's rows go in as a few of these (SQLite takes 32,766
parameters a statement; 256 rows of 20 columns is 5,120)."""


@dataclass(frozen=True, slots=True)
class Table:
    """Where rows of one kind go: ``INSERT [OR REPLACE] INTO name (columns) VALUES``."""

    insert: str  # the statement up to and including VALUES
    width: int  # columns a row
    calls: bool  # whether each row records a settled call (counted when lost)

    def statement(self, rows: int) -> str:
        group = "(" + ", ".join("?" * self.width) + ")"
        return f"{self.insert} " + ", ".join([group] * rows)


Row = tuple[Table, Sequence[Any]]


@dataclass(slots=True)
class _Barrier:
    """Everything queued before it is committed (or failed) once it is reached."""

    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[sqlite3.Error | None] | None = None
    event: threading.Event = field(default_factory=threading.Event)


_STOP = object()


class Writer:
    """One thread, one connection, one bounded queue: the journal's call rows."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float,
        on_error: Callable[[sqlite3.Error], None] | None = None,
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.on_error = on_error
        self.error: sqlite3.Error | None = None
        self.unwritten = 0
        """Settled calls whose rows were rolled back: their answers went on, their resume not."""
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_SIZE)
        self._pass: list[Row] = []  # this pass's rows, handed over together
        self._dirty = False  # rows handed over since the last barrier
        self._last: asyncio.Future[sqlite3.Error | None] | None = None  # that barrier's
        self._loop: asyncio.AbstractEventLoop | None = None  # where on_error is called
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="fanwise-journal", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            raise self._open_error

    def add(self, table: Table, row: Sequence[Any]) -> None:
        """A row for the next transaction: handed to the thread at the next pass of the event
        loop (or at the next ``committed``), with the rest of this pass's rows."""
        if not self._pass:
            loop = asyncio.get_running_loop()
            self._loop = loop
            loop.call_soon(self._hand_over)
        self._pass.append((table, row))

    def _hand_over(self) -> None:
        if self._pass:
            rows, self._pass = self._pass, []
            self._dirty = True
            self._queue.put(rows)

    def committed(self) -> asyncio.Future[sqlite3.Error | None]:
        """A future done once everything added so far is committed; its result is None, or
        the journal's first write error. Called on the event loop's thread; calls with nothing
        added in between share one future."""
        self._hand_over()
        loop = asyncio.get_running_loop()
        if not self._dirty and self._last is not None and self._last.get_loop() is loop:
            return self._last
        self._loop = loop
        barrier = _Barrier(loop, loop.create_future())
        self._dirty = False
        self._last = barrier.future
        self._queue.put(barrier)
        assert barrier.future is not None
        return barrier.future

    def flush(self) -> None:
        """Block until everything added so far is committed (or failed)."""
        if not self._thread.is_alive():
            return
        self._hand_over()
        barrier = _Barrier(None)
        self._dirty = False
        self._queue.put(barrier)
        barrier.event.wait()

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        if self._thread.is_alive():
            self._hand_over()
            self._queue.put(_STOP)
            self._thread.join()

    # the thread

    def _work(self) -> None:
        try:
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=self.busy_timeout, check_same_thread=False
            )
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA temp_store = MEMORY")
            db.execute("PRAGMA secure_delete = ON")
            db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        pending = 0  # settled calls in the open transaction
        try:
            while True:
                try:
                    item = self._queue.get(timeout=IDLE_COMMIT if db.in_transaction else None)
                except queue.Empty:
                    pending = self._commit(db, pending)
                    continue
                if item is _STOP:
                    self._commit(db, pending)
                    return
                if isinstance(item, _Barrier):
                    pending = self._commit(db, pending)
                    self._release(item)
                    continue
                assert isinstance(item, list)
                pending = self._execute(db, item, pending)
        finally:
            db.close()

    def _execute(self, db: sqlite3.Connection, rows: list[Row], pending: int) -> int:
        calls = sum(1 for table, _ in rows if table.calls)
        try:
            if not db.in_transaction:
                db.execute("BEGIN")
            for table, values in _grouped(rows):
                done = 0
                for size in CHUNKS:
                    while len(values) - done >= size:
                        chunk = values[done : done + size]
                        db.execute(table.statement(size), tuple(chain.from_iterable(chunk)))
                        done += size
        except Exception as exc:  # a row SQLite refused; anything else is as fatal to the rows
            self._failed(db, pending + calls, _as_sqlite(exc))
            return 0
        return pending + calls

    def _commit(self, db: sqlite3.Connection, pending: int) -> int:
        if db.in_transaction:
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._failed(db, pending, exc)
        return 0

    def _failed(self, db: sqlite3.Connection, lost: int, exc: sqlite3.Error) -> None:
        with contextlib.suppress(sqlite3.Error):
            if db.in_transaction:
                db.execute("ROLLBACK")
        self.unwritten += lost
        if self.error is None:
            self.error = exc
            if self.on_error is not None:
                self._call_soon(self._loop, self.on_error, exc)

    def _release(self, barrier: _Barrier) -> None:
        barrier.event.set()
        if barrier.future is not None:
            self._call_soon(barrier.loop, _resolve, barrier.future, self.error)

    @staticmethod
    def _call_soon(loop: asyncio.AbstractEventLoop | None, *args: Any) -> None:
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(*args)


def _grouped(rows: list[Row]) -> list[tuple[Table, list[Sequence[Any]]]]:
    """The rows by table, each table's in the order they came (tables in first-seen order)."""
    groups: dict[Table, list[Sequence[Any]]] = {}
    for table, values in rows:
        groups.setdefault(table, []).append(values)
    return list(groups.items())


def _as_sqlite(error: Exception) -> sqlite3.Error:
    if isinstance(error, sqlite3.Error):
        return error
    return sqlite3.Error(f"{type(error).__name__}: {error}")


def _resolve(future: asyncio.Future[sqlite3.Error | None], error: sqlite3.Error | None) -> None:
    if not future.done():
        future.set_result(error)
