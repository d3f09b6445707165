"""The journal file: one SQLite database in WAL mode, safe to share between processes.

Each settled call is one ``INSERT``, queued before anyone hears that the call settled, and
written by the journal's writer thread (``fanwise.journal.writer``), on its own connection, so
a locked or slow journal never stops the event loop. Before a call's request goes out, the
engine waits for the commit of everything queued so far (``committed``): the rows of the calls
settled before it, and its own sent mark (``record_sent``, the write-ahead intent), so a crash
loses only the calls in flight, and the journal says how many those were. One commit covers a
whole pass of the event loop, as before; the loop's thread now spends about 16 µs a row
(serialising it) where it spent the whole insert and commit, 78 to 104 µs a row at 100 rows a
pass on this busy machine (``python benchmarks/journal_write.py``). Without a running
event loop (a script calling ``record_call``) each row is written and committed at once, on the
caller's thread.

The file is private (``fanwise.paths``): created ``0600`` before SQLite opens it, its ``-wal``
and ``-shm`` made under a ``0077`` umask (SQLite gives them the database's mode too), any of
them found wider tightened with a notice, and SQLite's own temporary files kept in memory. With
``content=Content.META`` no prompt or answer text is written (``fanwise.journal.content``).

Calls are only ever appended. A call that is run again (resume after a failure) gets a new row;
a run's state is the latest row of each call index, and its cost is the sum of every row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fanwise.calls import Call, CallOutcome, canonical_json
from fanwise.journal.content import (
    Content,
    meta_label,
    meta_outcome,
    meta_request,
    meta_spec,
    meta_topic,
)
from fanwise.journal.records import CallRecord, RunRecord, Totals
from fanwise.journal.schema import JournalError, migrate
from fanwise.journal.writer import Table, Writer
from fanwise.models.base import Completion, Endpoint, Request, Usage
from fanwise.outcome import Fulfilled, outcome_from_dict
from fanwise.paths import PRIVATE_FILE, Notify, private_dir, private_file, private_umask, tighten
from fanwise.redact import redact
from fanwise.structured import outcome_usage

SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
"""What SQLite may create beside the database: kept as private as the database itself."""

_LATEST = "SELECT MAX(id) FROM calls WHERE run_id = ? GROUP BY idx"
_COUNTS = f"SELECT status, cached, COUNT(*) FROM calls WHERE id IN ({_LATEST}) GROUP BY 1, 2"
_SPENT = """
    SELECT COALESCE(SUM(cost), 0), COALESCE(SUM(cost IS NULL), 0),
        COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),
        COALESCE(SUM(reasoning_tokens), 0), COALESCE(SUM(cached_tokens), 0),
        COALESCE(SUM(json_extract(outcome, '$.value.usage.cache_write_tokens')), 0),
        COALESCE(SUM(json_extract(outcome, '$.value.usage.cache_write_1h_tokens')), 0)
    FROM calls WHERE run_id = ? AND cached = 0
"""
_OPEN_MARKS = """
    FROM sent s WHERE s.run_id = ? AND NOT EXISTS (
        SELECT 1 FROM calls c WHERE c.run_id = s.run_id AND c.idx = s.idx
        AND c.recorded_at >= s.sent_at)
"""
_UNANSWERED = f"SELECT COUNT(*), COALESCE(SUM(s.estimate), 0) {_OPEN_MARKS}"
"""Sent marks with no row of their call recorded since: the calls that may have been paid."""
_HELD = """
    AND s.idx NOT IN (SELECT json_extract(j.value, '$[0]') FROM batches b, json_each(b.calls) j
        WHERE b.run_id = ? AND b.state IN ('uploaded', 'submitted'))
"""
_UNANSWERED_AT_RESUME = f"{_UNANSWERED} {_HELD}"
"""The open marks a resume counts as unanswered for good: not those of the calls an open batch
holds (``--engine auto`` marks every call it takes): the resume collects that batch, so their
answers are not lost and nothing is sent again."""
# Cache writes (Anthropic's) have no column: they are read from the journaled outcome's usage.
_UNPRICED = """
    SELECT DISTINCT json_extract(outcome, '$.value.model') FROM calls
    WHERE run_id = ? AND cached = 0 AND cost IS NULL
"""
_RUN_COLUMNS = (
    "id, kind, topic, spec, endpoint, status, started_at, ended_at, total, reason, summary, pid,"
    " content, unanswered, unanswered_usd"
)
_CALL_COLUMNS = (
    "run_id, idx, key, label, request, status, outcome, error_kind, attempts, latency,"
    " input_tokens, cached_tokens, output_tokens, reasoning_tokens, cost, cached, recorded_at,"
    " request_body, response_body, line"
)
CALLS = Table(f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES", 20, calls=True)
SENT = Table("INSERT OR REPLACE INTO sent (run_id, idx, key, estimate, sent_at) VALUES", 5, False)
WRITER_BUSY_TIMEOUT = 60.0
"""How long the writer thread waits for another process's write lock before a write fails: it
waits off the event loop, so only the sending slows meanwhile."""


def _quiet(note: str) -> None:
    """A library caller that gave no ``notify`` hears nothing."""


class Journal:
    """Runs and their calls in one SQLite file; every write is redacted of the given secrets.

    ``content`` is what the runs started here keep: ``full``, or ``meta`` (no prompt or answer).
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        path: Path,
        *,
        secrets: Iterable[str | None] = (),
        clock: Callable[[], float] = time.time,
        content: Content = Content.FULL,
        busy_timeout: float = WRITER_BUSY_TIMEOUT,
    ) -> None:
        self.db = db
        self.path = path
        self.secrets = tuple(s for s in secrets if s)
        self.clock = clock
        self.content = content
        self._kinds: dict[int, str] = {}  # run id -> kind, for the runs written here
        self._withdrawn: set[tuple[int, int]] = set()  # (run, index): sent marks taken back
        self._closed = False
        self._busy_timeout = max(busy_timeout, WRITER_BUSY_TIMEOUT)
        self._writer: Writer | None = None  # started by the first write in an event loop
        self.on_write_error: Callable[[sqlite3.Error], None] | None = None
        """Called on the event loop's thread, once, when a write first fails."""

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        secrets: Iterable[str | None] = (),
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 10.0,
        content: Content = Content.FULL,
        notify: Notify = _quiet,
    ) -> Journal:
        """Open (creating and migrating as needed) the journal at ``path``, private to its owner.

        ``busy_timeout`` is how long a write waits for another process's write to finish; with
        one short transaction per call, the wait is a few milliseconds at most. ``notify`` hears
        the one-line notice when a file was found readable by others and tightened.
        """
        path = Path(path)
        give_up = time.monotonic() + busy_timeout
        while True:
            try:
                _make_private(path, notify)
                with private_umask():
                    db = _connect(path, busy_timeout)
            except sqlite3.OperationalError as exc:
                # Two processes creating one journal: switching a new file to WAL can answer
                # "locked" at once, without waiting on the busy handler. Try again, in time.
                if "locked" not in str(exc) or time.monotonic() > give_up:
                    raise JournalError(f"cannot open the journal {path}: {exc}") from None
                time.sleep(0.05)
            except sqlite3.Error as exc:
                raise JournalError(f"cannot open the journal {path}: {exc}") from None
            except OSError as exc:
                raise JournalError(f"cannot open the journal {path}: {exc.strerror}") from None
            else:
                return cls(
                    db,
                    path,
                    secrets=secrets,
                    clock=clock,
                    content=Content(content),
                    busy_timeout=busy_timeout,
                )

    def close(self) -> None:
        if self._closed:
            return
        if self._writer is not None:
            self._writer.close()
        self.db.close()
        self._closed = True

    def flush(self) -> None:
        """Wait for the writer thread to commit every row queued so far (a failed commit is
        counted in ``unwritten`` and kept in ``write_error``, not raised)."""
        if self._writer is not None and not self._closed:
            self._writer.flush()

    def committed(self) -> asyncio.Future[sqlite3.Error | None]:
        """Done once every row queued so far is committed; its result is None, or the first
        write error. The engine awaits it before a call's request goes out."""
        return self._writing().committed()

    @property
    def unwritten(self) -> int:
        """Settled calls whose rows were rolled back: their answers went on, their resume not."""
        return 0 if self._writer is None else self._writer.unwritten

    @property
    def write_error(self) -> sqlite3.Error | None:
        return None if self._writer is None else self._writer.error

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction on the caller's connection, rolled back if a statement fails: the
        rows ``record_call`` writes outside an event loop inside it are committed together."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _writing(self) -> Writer:
        if self._writer is None:
            self._writer = Writer(
                self.path, busy_timeout=self._busy_timeout, on_error=self._write_failed
            )
        return self._writer

    def _write_failed(self, error: sqlite3.Error) -> None:
        if self.on_write_error is not None:
            self.on_write_error(error)

    def _add(self, table: Table, row: tuple[Any, ...]) -> None:
        """A row for the writer thread inside an event loop; outside one, written and committed
        here and now (raising what fails)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            with contextlib.nullcontext() if self.db.in_transaction else self.transaction():
                self.db.execute(table.statement(1), row)
            return
        self._writing().add(table, row)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, data: Any) -> str:
        return self._redact(canonical_json(data))

    def _redact_bytes(self, raw: bytes) -> bytes:
        """A response body as it came, unless a secret may be in it (then redacted as text)."""
        lowered = raw.lower()
        if (
            b"sk-" in lowered
            or b"bearer" in lowered
            or any(s.encode() in raw for s in self.secrets)
        ):
            return self._redact(raw.decode(errors="replace")).encode()
        return raw

    def _redact(self, text: str) -> str:
        """``redact``, skipped when no secret can be in the text: its regexes took a third of
        a write's time (57 of 150 µs for a 2 kB answer, under cProfile)."""
        lowered = text.lower()
        if "sk-" in lowered or "bearer" in lowered or any(s in text for s in self.secrets):
            return redact(text, *self.secrets)
        return text

    # runs

    def start_run(
        self,
        kind: str,
        topic: str,
        spec: Mapping[str, Any],
        *,
        endpoint: str,
        total: int | None = None,
    ) -> int:
        """A new run, status ``running``; returns its id."""
        self.flush()
        if self.content is Content.META:
            topic, spec = meta_topic(kind, topic), meta_spec(spec)
        cursor = self.db.execute(
            "INSERT INTO runs (kind, topic, spec, endpoint, total, status, started_at, pid,"
            " content) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
            (
                kind,
                self._redact(topic),
                self._json(spec),
                endpoint,
                total,
                self.clock(),
                os.getpid(),
                self.content.value,
            ),
        )
        assert cursor.lastrowid is not None
        self._kinds[cursor.lastrowid] = kind
        return cursor.lastrowid

    def reopen_run(self, run_id: int) -> None:
        """A run being resumed: running again, in this process. The calls an earlier process
        sent and never heard back from (its sent marks) are counted into the run's
        ``unanswered`` for good: they may have been paid for; this process sends them again."""
        self.flush()
        count, estimate = self.db.execute(_UNANSWERED_AT_RESUME, (run_id, run_id)).fetchone()
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET status = 'running', reason = NULL, ended_at = NULL, pid = ?,"
                " unanswered = unanswered + ?, unanswered_usd = unanswered_usd + ? WHERE id = ?",
                (os.getpid(), count, estimate, run_id),
            )
            self.db.execute("DELETE FROM sent WHERE run_id = ?", (run_id,))

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        reason: str | None = None,
        summary: Mapping[str, Any] | None = None,
        total: int | None = None,
    ) -> None:
        """Close the run with its status. The sent marks its calls answered are dropped; the
        others (the calls a Ctrl-C cut off, or a failed journal never recorded) are kept, for
        ``runs`` and ``show`` to count and a resume to settle."""
        self.flush()
        self.db.execute(
            "UPDATE runs SET status = ?, reason = ?, summary = ?, ended_at = ?,"
            " total = COALESCE(?, total) WHERE id = ?",
            (
                status,
                self._redact(reason) if reason else None,
                self._json(summary) if summary is not None else None,
                self.clock(),
                total,
                run_id,
            ),
        )
        withdrawn = [(run, idx) for run, idx in self._withdrawn if run == run_id]
        self._withdrawn.difference_update(withdrawn)
        with contextlib.suppress(sqlite3.Error):  # tidying only: the marks still count right
            self.db.executemany("DELETE FROM sent WHERE run_id = ? AND idx = ?", withdrawn)
            self.db.execute(
                "DELETE FROM sent WHERE run_id = ? AND (run_id, idx) NOT IN"
                f" (SELECT s.run_id, s.idx {_OPEN_MARKS})",
                (run_id, run_id),
            )

    def run(self, run_id: int) -> RunRecord | None:
        row = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else self._run(row)

    def runs(self, limit: int = 20) -> list[RunRecord]:
        """The most recent runs first."""
        rows = self.db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [self._run(row) for row in rows]

    def totals(self, run_id: int, unanswered: tuple[int, float] = (0, 0.0)) -> Totals:
        """Counts by each call's latest outcome; usage and cost over every row ever written;
        the calls sent and never answered (``unanswered``: those an earlier process of the run
        left, counted at its resume) with the sent marks still open."""
        counts = {"fulfilled": 0, "rejected": 0, "cached": 0}
        for status, cached, count in self.db.execute(_COUNTS, (run_id,)):
            counts[status] += count
            counts["cached"] += count if cached else 0
        cost, unpriced, inp, out, reasoning, cached_tokens, written, hour = self.db.execute(
            _SPENT, (run_id,)
        ).fetchone()
        open_marks, open_usd = self.db.execute(_UNANSWERED, (run_id,)).fetchone()
        models: tuple[str, ...] = ()
        if unpriced:
            rows = self.db.execute(_UNPRICED, (run_id,)).fetchall()
            models = tuple(sorted(str(row[0] or "?") for row in rows))
        return Totals(
            counts["fulfilled"],
            counts["rejected"],
            counts["cached"],
            Usage(
                int(inp),
                int(out),
                int(reasoning),
                int(cached_tokens),
                cache_write_tokens=int(written),
                cache_write_1h_tokens=int(hour),
            ),
            float(cost),
            int(unpriced),
            unanswered[0] + int(open_marks),
            unanswered[1] + float(open_usd),
            unpriced_models=models,
        )

    def _run(self, row: tuple[Any, ...]) -> RunRecord:
        run_id, kind, topic, spec, endpoint, status, started, ended, total, reason, summary, pid = (
            row[:12]
        )
        return RunRecord(
            id=run_id,
            kind=kind,
            topic=topic,
            spec=json.loads(spec),
            endpoint=endpoint,
            status=status,
            started_at=started,
            ended_at=ended,
            total=total,
            reason=reason,
            summary=json.loads(summary) if summary else {},
            pid=pid,
            totals=self.totals(run_id, (int(row[13]), float(row[14]))),
            content=Content(row[12]),
        )

    # calls

    def record_call(
        self,
        run_id: int,
        index: int,
        call: Call,
        outcome: CallOutcome,
        *,
        cost: float | None,
        line: int | None = None,
    ) -> None:
        """Append one settled call (its row answers its sent mark); the writer thread commits
        it with the others of this pass. ``line`` is a batch call's input line."""
        usage = outcome_usage(outcome)
        cached = isinstance(outcome, Fulfilled) and outcome.cached
        label, stored = call.label, outcome.to_dict()
        body: bytes | None = None
        response: bytes | None = None
        if self.content is Content.META:  # no text: neither body is kept
            label = meta_label(self._kind(run_id), label, index)
            request = self._json(meta_request(call.request.to_dict()))
            stored = meta_outcome(stored)
        else:
            request = _ENDPOINT_ROW[call.request.endpoint]
            body = _compress(self._redact(call.canonical_body).encode())
            raw = outcome.value.raw if isinstance(outcome, Fulfilled) else b""
            response = _compress(self._redact_bytes(raw)) if raw else None
        row = (
            run_id,
            index,
            call.key,
            self._redact(label),
            request,
            outcome.status,
            self._json(stored),
            None if isinstance(outcome, Fulfilled) else outcome.kind.value,
            len(outcome.attempts),
            outcome.latency,
            usage.input_tokens,
            usage.cached_tokens,
            usage.output_tokens,
            usage.reasoning_tokens,
            0.0 if cached else cost,
            int(cached),
            self.clock(),
            body,
            response,
            line,
        )
        self._add(CALLS, row)

    def record_sent(self, run_id: int, index: int, key: str, estimate: float | None) -> None:
        """Mark a call as sent, before its request goes out (the write-ahead intent): the mark
        is committed with the rows of its pass, before the request. A mark with no row of its
        call recorded after it is a call that may have been paid for with no answer kept (a
        crash, a kill). ``estimate`` is what the call may cost (None: unpriced)."""
        self._add(SENT, (run_id, index, key, estimate, self.clock()))

    def withdraw_sent(self, run_id: int, index: int) -> None:
        """A call marked sent whose request never went out (the run halted before it): its
        mark is dropped when the run is closed (``finish_run``), so it is not counted as a call
        that may have been paid for."""
        self._withdrawn.add((run_id, index))

    def _kind(self, run_id: int) -> str:
        if run_id not in self._kinds:
            row = self.db.execute("SELECT kind FROM runs WHERE id = ?", (run_id,)).fetchone()
            self._kinds[run_id] = row[0] if row else "workflow"
        return self._kinds[run_id]

    def fulfilled_in_run(self, run_id: int, key: str) -> Fulfilled[Completion] | None:
        """The latest fulfilled outcome of this call key in this run (resume); a run that kept
        only ``meta`` has no answer to give."""
        row = self.db.execute(
            "SELECT c.outcome, c.response_body FROM calls c JOIN runs r ON r.id = c.run_id"
            " WHERE c.key = ? AND c.status = 'fulfilled' AND c.run_id = ? AND r.content = 'full'"
            " ORDER BY c.id DESC LIMIT 1",
            (key, run_id),
        ).fetchone()
        return None if row is None else _fulfilled(*row)

    def fulfilled_anywhere(self, key: str, endpoint: str) -> Fulfilled[Completion] | None:
        """The latest fulfilled outcome of this call key from any ``full`` run on the same
        endpoint (a ``meta`` run kept no answer)."""
        row = self.db.execute(
            "SELECT c.outcome, c.response_body FROM calls c JOIN runs r ON r.id = c.run_id"
            " WHERE c.key = ? AND c.status = 'fulfilled' AND r.endpoint = ? AND r.content = 'full'"
            " ORDER BY c.id DESC LIMIT 1",
            (key, endpoint),
        ).fetchone()
        return None if row is None else _fulfilled(*row)

    def latest_calls(self, run_id: int) -> Iterator[CallRecord]:
        """The latest row of each call index of a run, in index order, read lazily."""
        cursor = self.db.execute(
            "SELECT run_id, idx, key, label, request, outcome, cost, recorded_at, request_body,"
            f" response_body, line FROM calls WHERE id IN ({_LATEST}) ORDER BY idx",
            (run_id,),
        )
        for run, index, key, label, request, outcome, cost, recorded_at, sent, got, line in cursor:
            yield CallRecord(
                run,
                index,
                key,
                label,
                _request(request, sent),
                _outcome(outcome, got),
                cost,
                recorded_at,
                line,
            )


def _compress(data: bytes) -> bytes:
    """zlib at its default level, a 4 kB window, a small hash table (``memLevel`` 4) and a
    preset dictionary of the APIs' usual keys (``DICTIONARY``): a simulated 1.1 kB Response
    becomes 263 bytes (599 without the dictionary). Each body starts from a copy of one
    compressor already primed with the dictionary (``_PRIMED``): priming a new one on every
    call hashed the 2.3 kB dictionary each time, 16 of a write's 26 µs under cProfile. The
    row's size is most of what a journal write costs beyond its commit. A body under ``SMALL``
    bytes is kept as it is. ``_expand`` tells the two apart by the first byte."""
    if len(data) < SMALL:
        return data
    compressor = _PRIMED.copy()
    return compressor.compress(data) + compressor.flush()


def _expand(data: bytes) -> bytes:
    """A body ``_compress`` kept: zlib's stream starts with 0x48, a JSON body never does."""
    if data[:1] != b"\x48":
        return data
    return zlib.decompressobj(zdict=DICTIONARY).decompress(data)


SMALL = 256
DICTIONARY = (
    b'{"id":"chatcmpl-","object":"chat.completion","created":,"model":"gpt-4o-mini","choices":'
    b'[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"annotations":[],'
    b'"tool_calls":[{"id":"call_","type":"function","function":{"name":"","arguments":"{}"}}]},'
    b'"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":,"completion_tokens":,'
    b'"total_tokens":,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default",'
    b'"system_fingerprint":null}{"object":"list","data":[{"object":"embedding","index":0,'
    b'"embedding":[]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":,'
    b'"total_tokens":}}{"id":"resp_","object":"response","created_at":,"status":"completed",'
    b'"background":false,"error":null,"incomplete_details":null,"instructions":null,'
    b'"max_output_tokens":null,"model":"gpt-5","output":[{"id":"rs_","type":"reasoning",'
    b'"summary":[]},{"id":"msg_","type":"message","status":"completed","role":"assistant",'
    b'"content":[{"type":"output_text","annotations":[],"logprobs":[],"text":""}]}],'
    b'"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":"minimal",'
    b'"summary":null},"service_tier":"default","store":false,"temperature":1.0,"text":'
    b'{"format":{"type":"text"},"verbosity":"medium"},"tool_choice":"auto","tools":[],'
    b'"top_p":1.0,"truncation":"disabled","usage":{"input_tokens":,"input_tokens_details":'
    b'{"cached_tokens":0},"output_tokens":,"output_tokens_details":{"reasoning_tokens":0},'
    b'"total_tokens":},"user":null,"metadata":{},"completed_at":}'
)
"""What API bodies usually hold (a ChatCompletion, an embeddings list, a Response), zlib's
preset dictionary for them: never change it, or older rows no longer read back."""

_PRIMED = zlib.compressobj(6, zlib.DEFLATED, 12, 4, zdict=DICTIONARY)
"""Never used itself, only copied (``_compress``): a constant, like ``DICTIONARY``."""

_ENDPOINT_ROW = {endpoint: canonical_json({"endpoint": endpoint.value}) for endpoint in Endpoint}
"""The ``request`` column of a full row, one per endpoint: it holds only the endpoint."""


def _request(text: str, body: bytes | None) -> Request:
    """A call's request: the endpoint column and the compressed body, or an older row's JSON."""
    data = json.loads(text)
    if body is not None:
        return Request(Endpoint(data["endpoint"]), json.loads(_expand(body)))
    return Request.from_dict(data)


def _outcome(text: str, raw: bytes | None) -> CallOutcome:
    body = _expand(raw) if raw is not None else b""
    return outcome_from_dict(json.loads(text), lambda data: Completion.from_dict(data, body))


def _fulfilled(text: str, raw: bytes | None) -> Fulfilled[Completion] | None:
    outcome = _outcome(text, raw)
    return outcome if isinstance(outcome, Fulfilled) else None


def _make_private(path: Path, notify: Notify) -> None:
    """The journal file exists, ``0600``, before SQLite opens it; its side files no wider.

    A missing directory is created ``0700``; an existing one is the user's to choose.
    """
    if not path.parent.exists():
        private_dir(path.parent, notify)
    private_file(path, notify)
    for suffix in SQLITE_SIDE_FILES:
        tighten(path.with_name(path.name + suffix), PRIVATE_FILE, notify)


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection in WAL mode with the schema up to date; closed again if any step fails.

    Temporary tables and sorts stay in memory: SQLite's temp files would be the one copy of
    journal data outside the private directory. Deleted rows (``fanwise prune``) are overwritten
    with zeros, not left readable in free pages.
    """
    db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        db.execute("PRAGMA temp_store = MEMORY")
        db.execute("PRAGMA secure_delete = ON")
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db
