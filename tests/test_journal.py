"""The SQLite journal: its schema, calls written as they settle, resume, cache, cost, secrets."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from fanwise import Call, Engine, Fulfilled, Rejected, Request, RetryPolicy
from fanwise.events import CallStarted, Event
from fanwise.journal import MIGRATIONS, Journal, JournalError, JournalStore
from fanwise.models import OfflineModel, OfflineSettings
from fanwise.models.base import Completion
from fanwise.outcome import BadRequest
from fanwise.prices import Price, PriceTable
from tests.scripted import Reply, ScriptedModel

PRICES = PriceTable({"gpt-5": Price(input=1000.0, output=2000.0, cached_input=100.0)}, "test")
EXPECTED_SCHEMA = {
    ("table", "runs"): (
        "CREATE TABLE runs ( id INTEGER PRIMARY KEY, kind TEXT NOT NULL, topic TEXT NOT NULL, "
        "spec TEXT NOT NULL, endpoint TEXT NOT NULL, total INTEGER, status TEXT NOT NULL, "
        "reason TEXT, summary TEXT, started_at REAL NOT NULL, ended_at REAL, pid INTEGER ,"
        " content TEXT NOT NULL DEFAULT 'full', unanswered INTEGER NOT NULL DEFAULT 0,"
        " unanswered_usd REAL NOT NULL DEFAULT 0)"
    ),
    ("table", "calls"): (
        "CREATE TABLE calls ( id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES "
        "runs(id), idx INTEGER NOT NULL, key TEXT NOT NULL, label TEXT NOT NULL, request TEXT "
        "NOT NULL, status TEXT NOT NULL, outcome TEXT NOT NULL, error_kind TEXT, attempts "
        "INTEGER NOT NULL, latency REAL NOT NULL, input_tokens INTEGER NOT NULL DEFAULT 0, "
        "cached_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0, "
        "reasoning_tokens INTEGER NOT NULL DEFAULT 0, cost REAL, cached INTEGER NOT NULL "
        "DEFAULT 0, recorded_at REAL NOT NULL , request_body BLOB, response_body BLOB, line "
        "INTEGER)"
    ),
    ("index", "calls_by_run"): "CREATE INDEX calls_by_run ON calls(run_id, idx)",
    ("index", "calls_by_key"): (
        "CREATE INDEX calls_by_key ON calls(key) WHERE status = 'fulfilled'"
    ),
    ("table", "batches"): (
        "CREATE TABLE batches ( id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES "
        "runs(id), input_file_id TEXT NOT NULL, batch_id TEXT, endpoint TEXT NOT NULL, calls "
        "TEXT NOT NULL, state TEXT NOT NULL, api_status TEXT, created_at REAL NOT NULL, "
        "updated_at REAL NOT NULL )"
    ),
    ("index", "batches_by_run"): "CREATE INDEX batches_by_run ON batches(run_id, state)",
    ("table", "sent"): (
        "CREATE TABLE sent ( run_id INTEGER NOT NULL, idx INTEGER NOT NULL, key TEXT NOT NULL, "
        "estimate REAL, sent_at REAL NOT NULL, PRIMARY KEY (run_id, idx) ) WITHOUT ROWID"
    ),
}


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal.open(tmp_path / "journal.db") as opened:
        yield opened


def calls(*prompts: str) -> list[Call]:
    return [Call(Request.text(p)) for p in prompts]


def written_bytes(folder: Path) -> bytes:
    """Everything in the files of a folder (the database and its WAL)."""
    return b"".join(path.read_bytes() for path in folder.iterdir() if path.is_file())


def failure(recording: JournalStore) -> Exception | None:
    """Why the store stops the sending (a function: mypy would narrow the property)."""
    return recording.failure


def store(
    journal: Journal, run_id: int, *, resume: bool = False, cache: bool = False
) -> JournalStore:
    return JournalStore(
        journal, run_id, prices=PRICES, endpoint="scripted", resume=resume, cache=cache
    )


def test_a_blank_journal_gets_exactly_the_final_schema(tmp_path: Path) -> None:
    """Migrating a blank file yields these tables and indexes, at the last schema version."""
    Journal.open(tmp_path / "j.db").close()
    db = sqlite3.connect(tmp_path / "j.db")
    rows = db.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    schema = {(kind, name): " ".join(sql.split()) for kind, name, sql in rows}
    assert schema == EXPECTED_SCHEMA
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_opening_twice_migrates_once_and_a_newer_journal_is_refused(tmp_path: Path) -> None:
    """A second open keeps the data; a journal from a newer fanwise is refused, not damaged."""
    path = tmp_path / "j.db"
    with Journal.open(path) as first:
        run_id = first.start_run("workflow", "t", {}, endpoint="e")
    with Journal.open(path) as second:
        assert second.run(run_id) is not None
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(JournalError, match="newer than this fanwise knows"):
        Journal.open(path)


def test_a_journal_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    """A path under a regular file is refused with the path in the message."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(JournalError, match=r"cannot open the journal .*file/j\.db"):
        Journal.open(tmp_path / "file" / "j.db")


async def test_each_call_is_committed_before_the_next_is_sent_and_marked_sent_before_its_own(
    journal: Journal, tmp_path: Path
) -> None:
    """When a call starts, another connection reads the rows of every call settled before it
    and the call's own sent mark (the write-ahead intent); every mark is answered at the end."""
    run_id = journal.start_run("workflow", "t", {}, endpoint="scripted")
    reader = sqlite3.connect(tmp_path / "journal.db")
    at_start: list[tuple[int, list[int]]] = []

    def count(db: sqlite3.Connection) -> int:
        rows = db.execute("SELECT COUNT(*) FROM calls WHERE run_id = ?", (run_id,))
        return int(rows.fetchone()[0])

    def marks() -> list[int]:
        return [row[0] for row in reader.execute("SELECT idx FROM sent ORDER BY idx")]

    def observe(event: Event) -> None:
        if isinstance(event, CallStarted):
            at_start.append((count(reader), marks()))

    model = ScriptedModel()
    for prompt in ("a", "b", "c"):
        model.enqueue(prompt, Reply(delay=0.001))
    engine = Engine(model, store=store(journal, run_id), observer=observe, concurrency=1)
    await engine.run(calls("a", "b", "c"))
    assert at_start == [(0, [0]), (1, [0, 1]), (2, [0, 1, 2])]
    assert count(reader) == 3  # committed before the run returned
    assert journal.totals(run_id).unanswered == 0, "every mark answered by its call's row"
    journal.finish_run(run_id, "complete")
    assert marks() == [], "a finished run keeps only the marks no row answered"


async def test_the_writer_thread_commits_when_asked_and_counts_a_failed_write(
    journal: Journal,
) -> None:
    """Rows queued on the loop are committed by the writer thread when the engine asks; a write
    that fails rolls its transaction back, is counted as unrecorded (the answers went on),
    reported once on the loop's thread, and fails the store closed."""
    run_id = journal.start_run("workflow", "t", {}, endpoint="scripted")
    recording = store(journal, run_id)
    errors: list[Exception] = []
    journal.on_write_error = errors.append
    outcome: Fulfilled[Completion] = Fulfilled(Completion("x"), 0.1)
    recording.settle(0, Call(Request.text("a")), outcome)
    assert await journal.committed() is None
    assert recording.unrecorded == 0 and failure(recording) is None

    recording.settle(1, Call(Request.text("b")), outcome)
    # A row of a run that does not exist breaks a foreign key: the transaction fails.
    JournalStore(journal, 999, prices=PRICES, endpoint="scripted").settle(
        2, Call(Request.text("c")), outcome
    )
    error = await journal.committed()
    assert isinstance(error, sqlite3.Error) and errors == [error]
    assert recording.unrecorded == 2 and recording.write_error is error
    assert "not sent" in str(failure(recording))
    assert [row[0] for row in journal.db.execute("SELECT idx FROM calls")] == [0]


async def test_resume_sends_only_the_calls_that_failed(journal: Journal) -> None:
    """A resumed run reuses its fulfilled calls (no request) and re-sends only the rejected one."""
    run_id = journal.start_run("workflow", "t", {}, endpoint="scripted")
    model = ScriptedModel()
    model.enqueue("b", Reply(error=BadRequest("no")))
    first = await Engine(model, store=store(journal, run_id), retry=RetryPolicy(0)).run(
        calls("a", "b", "c")
    )
    assert [o.status for o in first] == ["fulfilled", "rejected", "fulfilled"]
    assert journal.totals(run_id).rejected == 1

    model.history.clear()
    resumed = store(journal, run_id, resume=True)
    second = await Engine(model, store=resumed).run(calls("a", "b", "c"))
    assert [r.prompt for r in model.history] == ["b"]
    assert all(isinstance(o, Fulfilled) for o in second)
    assert [o.cached for o in second if isinstance(o, Fulfilled)] == [True, False, True]
    assert resumed.reused == 2
    totals = journal.totals(run_id)
    assert (totals.fulfilled, totals.rejected) == (3, 0)
    rows = journal.db.execute("SELECT COUNT(*) FROM calls WHERE run_id = ?", (run_id,))
    assert rows.fetchone()[0] == 4, "reused calls are not written twice; the retry is appended"


async def test_cache_answers_identical_calls_across_runs_at_zero_cost(journal: Journal) -> None:
    """With cache on, a second run makes no request, marks answers cached and costs nothing."""
    model = ScriptedModel()
    first_run = journal.start_run("workflow", "t", {}, endpoint="scripted")
    await Engine(model, store=store(journal, first_run)).run(calls("a", "b"))
    assert len(model.history) == 2 and journal.totals(first_run).cost > 0

    second_run = journal.start_run("workflow", "t", {}, endpoint="scripted")
    cached = store(journal, second_run, cache=True)
    outcomes = await Engine(model, store=cached).run(calls("a", "b"))
    assert len(model.history) == 2, "no new request"
    assert all(isinstance(o, Fulfilled) and o.cached for o in outcomes)
    totals = journal.totals(second_run)
    assert (totals.cached, totals.cost, cached.spent) == (2, 0.0, 0.0)

    third_run = journal.start_run("workflow", "t", {}, endpoint="scripted")
    await Engine(model, store=store(journal, third_run)).run(calls("a"))
    assert len(model.history) == 3, "without cache the call is sent"


async def test_the_cache_never_crosses_endpoints(journal: Journal) -> None:
    """An answer from one endpoint (say, the offline model) never answers for another."""
    offline_run = journal.start_run("workflow", "t", {}, endpoint="offline")
    offline = JournalStore(journal, offline_run, prices=PRICES, endpoint="offline")
    await Engine(OfflineModel(OfflineSettings(latency=(0, 0.01))), store=offline).run(calls("a"))
    model = ScriptedModel()
    other_run = journal.start_run("workflow", "t", {}, endpoint="scripted")
    await Engine(model, store=store(journal, other_run, cache=True)).run(calls("a"))
    assert len(model.history) == 1


async def test_usage_and_cost_are_recorded_per_call_and_totalled_per_run(
    journal: Journal,
) -> None:
    """Each row holds usage and cost; the run's totals add them up; offline calls cost $0."""
    run_id = journal.start_run("workflow", "t", {}, endpoint="scripted")
    await Engine(ScriptedModel(), store=store(journal, run_id)).run(calls("a", "b"))
    rows = journal.db.execute("SELECT input_tokens, output_tokens, cost FROM calls").fetchall()
    per_call = (10 * 1000 + 5 * 2000) / 1e6
    assert rows == [(10, 5, pytest.approx(per_call))] * 2
    totals = journal.totals(run_id)
    assert totals.cost == pytest.approx(2 * per_call) and totals.usage.total_tokens == 30

    offline_run = journal.start_run("workflow", "t", {}, endpoint="offline")
    offline_store = JournalStore(
        journal, offline_run, prices=PriceTable({"offline": Price(0, 0)}), endpoint="offline"
    )
    model = OfflineModel(OfflineSettings(latency=(0, 0.01)))
    await Engine(model, store=offline_store).run(calls("a"))
    assert journal.totals(offline_run).cost == 0.0 and journal.totals(offline_run).unpriced == 0


async def test_a_model_without_a_price_is_counted_not_guessed(journal: Journal) -> None:
    """An unpriced model's calls have no cost (NULL) and are counted as unpriced."""
    run_id = journal.start_run("workflow", "t", {}, endpoint="scripted")
    await Engine(ScriptedModel(), store=store(journal, run_id)).run(
        [Call(Request.text("a", "llama"))]
    )
    totals = journal.totals(run_id)
    assert (totals.cost, totals.unpriced) == (0.0, 1)


async def test_the_api_key_is_never_written(tmp_path: Path) -> None:
    """A secret in the spec, a prompt or an error message is masked in the file on disk."""
    key = "sk-proj-THISISASECRETKEY1234567890"
    path = tmp_path / "j.db"
    with Journal.open(path, secrets=[key]) as journal:
        run_id = journal.start_run("workflow", "t", {"base_url": f"x{key}"}, endpoint="e")
        model = ScriptedModel()
        model.enqueue(f"use {key}", Reply(error=BadRequest(f"bad key {key}")))
        await Engine(model, store=store(journal, run_id), retry=RetryPolicy(0)).run(
            calls(f"use {key}", "fine")
        )
        journal.finish_run(run_id, "partial", reason=f"because {key}")
    assert b"THISISASECRET" not in written_bytes(tmp_path)


async def test_latest_calls_rebuild_every_outcome(journal: Journal) -> None:
    """The journal gives back each call's latest outcome, with its text and error kind."""
    run_id = journal.start_run("workflow", "t", {}, endpoint="scripted")
    model = ScriptedModel()
    model.enqueue("b", Reply(error=BadRequest("no")))
    await Engine(model, store=store(journal, run_id), retry=RetryPolicy(0)).run(calls("a", "b"))
    records = list(journal.latest_calls(run_id))
    assert [r.index for r in records] == [0, 1]
    first, second = records[0].outcome, records[1].outcome
    assert isinstance(first, Fulfilled) and first.value.text == "answer to a"
    assert isinstance(second, Rejected) and second.kind == "bad_request"
    assert records[0].request == Request.text("a")
