"""The journal's writer thread: call rows written and committed off the event loop.

A locked journal (another process holding ``BEGIN IMMEDIATE``) or a slow disk used to stop the
whole event loop while SQLite waited: no request went out, the live view froze, timeouts did not
fire. Now the loop only queues each statement, already serialised, and a thread with its own
connection executes them. The thread commits when the engine asks whether everything queued so
far is committed (``committed``): the engine asks before each call's request goes out, so a
call settled in one pass of the event loop is committed, with the sent marks of the calls about
to start, before the slot it freed sends its next request. One commit covers everything queued
since the last, as one commit a pass did on the loop's thread. When nobody asks, the thread
commits after ``IDLE_COMMIT`` seconds with nothing new, so it never holds the write lock long.

A statement that fails (a full disk) rolls back the transaction it was in; the calls whose rows
it held are counted in ``unwritten``, the first error is kept in ``error`` and reported once,
on the loop's thread, to ``on_error``; every later ``committed`` future holds that error. The
thread goes on trying each later transaction (a lock that outlasted the busy timeout may have
been released): it is the store that decides whether the run stops.

The queue is bounded: the engine waits for a commit before each launch, so the calls in flight
bound what is queued; the bound only holds back a run that settles thousands of calls with no
launch between (the unsent calls of a stopped run), and then the loop waits for the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUEUE_SIZE = 10_000
IDLE_COMMIT = 0.05
"""Seconds with nothing queued after which an open transaction is committed unasked."""

Statement = tuple[str, Sequence[Any]]


@dataclass(slots=True)
class _Rows:
    """Statements of one call (its row, or its sent mark), written in one transaction."""

    statements: tuple[Statement, ...]
    calls: int  # how many settled calls these statements record (0 for a sent mark)


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
        self._dirty = False  # rows queued since the last barrier
        self._last: asyncio.Future[sqlite3.Error | None] | None = None  # that barrier's
        self._loop: asyncio.AbstractEventLoop | None = None  # where on_error is called
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="fanwise-journal", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            raise self._open_error

    def put(self, statements: tuple[Statement, ...], *, calls: int = 0) -> None:
        """Queue statements for the next transaction (blocks only when the queue is full)."""
        if self._loop is None:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
        self._dirty = True
        self._queue.put(_Rows(statements, calls))

    def committed(self) -> asyncio.Future[sqlite3.Error | None]:
        """A future done once everything queued so far is committed; its result is None, or
        the journal's first write error. Called on the event loop's thread; calls with nothing
        queued in between share one future."""
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
        """Block until everything queued so far is committed (or failed)."""
        if not self._thread.is_alive():
            return
        barrier = _Barrier(None)
        self._dirty = False
        self._queue.put(barrier)
        barrier.event.wait()

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        if self._thread.is_alive():
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
                assert isinstance(item, _Rows)
                pending = self._execute(db, item, pending)
        finally:
            db.close()

    def _execute(self, db: sqlite3.Connection, rows: _Rows, pending: int) -> int:
        try:
            if not db.in_transaction:
                db.execute("BEGIN")
            for sql, params in rows.statements:
                db.execute(sql, params)
        except sqlite3.Error as exc:
            self._failed(db, pending + rows.calls, exc)
            return 0
        return pending + rows.calls

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


def _resolve(future: asyncio.Future[sqlite3.Error | None], error: sqlite3.Error | None) -> None:
    if not future.done():
        future.set_result(error)
