"""The journal is private by default (0700 home, 0600 files), optional, and can keep no text."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fanwise import Call, Request
from fanwise.cli import cli
from fanwise.journal import NOT_KEPT, Content, Journal, JournalStore
from fanwise.outcome import Fulfilled
from fanwise.prices import load_prices
from tests.scripted import ScriptedModel

OFFLINE = ("--provider", "offline", "--offline-latency", "0,0.01", "--quiet")
MARKER = "ZQXMARKER"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask, so only fanwise's own care can make a file private."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def fanwise(*args: str, env: dict[str, str] | None = None, url: str | None = None) -> Result:
    """The CLI in-process; against the simulator at ``url`` when one is given."""
    target = ["--provider", "openai", "--base-url", url] if url else []
    command, *rest = args
    environ = {"OPENAI_API_KEY": "test", "OPENAI_BASE_URL": "", "FANWISE_MODEL": "", **(env or {})}
    return CliRunner().invoke(cli, [command, *rest, *target], env=environ, catch_exceptions=False)


def requests(url: str) -> int:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/_stats", timeout=10) as response:
        data: dict[str, Any] = json.load(response)
    return int(data["requests"])


def files_under(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")) if home.exists() else []


# permissions


def test_a_fresh_home_is_0700_and_its_journal_files_0600(tmp_path: Path) -> None:
    """One real run under umask 000 leaves the home 0700 and journal.db (and -wal, -shm) 0600."""
    home = tmp_path / "fresh" / "home"
    done = subprocess.run(
        [sys.executable, "-m", "fanwise", "travel", "Kyoto", *OFFLINE],
        env={**os.environ, "FANWISE_HOME": str(home), "OPENAI_API_KEY": ""},
        capture_output=True,
        text=True,
        umask=0,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert mode(home) == 0o700
    assert mode(home / "journal.db") == 0o600
    for side in ("journal.db-wal", "journal.db-shm"):
        if (home / side).exists():
            assert mode(home / side) == 0o600
    assert mode(tmp_path / "fresh") == 0o777, "a parent that is not fanwise's keeps the umask's"


def test_the_wal_and_shm_are_0600_while_the_journal_is_open(
    tmp_path: Path, open_umask: None
) -> None:
    """Under umask 000, the files SQLite makes beside an open journal are 0600 all the same."""
    path = tmp_path / "journal.db"
    with Journal.open(path) as journal:
        journal.start_run("workflow", "t", {}, endpoint="e")
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["journal.db", "journal.db-shm", "journal.db-wal"]
        assert {name: mode(tmp_path / name) for name in names} == dict.fromkeys(names, 0o600)


def test_sqlite_writes_no_temp_file_and_overwrites_what_is_deleted(tmp_path: Path) -> None:
    """Sorts and temp tables stay in memory (no copy in /tmp); deleted rows are zeroed."""
    with Journal.open(tmp_path / "journal.db") as journal:
        assert journal.db.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
        assert journal.db.execute("PRAGMA secure_delete").fetchone()[0] == 1


def test_wider_files_are_tightened_with_a_one_line_notice(fanwise_home: Path) -> None:
    """A 0755 home and a 0644 journal (and -wal) from an older fanwise are closed, and said so."""
    path = fanwise_home / "journal.db"
    Journal.open(path).close()
    (fanwise_home / "journal.db-wal").write_bytes(b"")
    for file in (path, fanwise_home / "journal.db-wal"):
        file.chmod(0o644)
    fanwise_home.chmod(0o755)
    result = fanwise("runs")
    assert result.exit_code == 0, result.stderr
    assert mode(fanwise_home) == 0o700 and mode(path) == 0o600
    if (fanwise_home / "journal.db-wal").exists():
        assert mode(fanwise_home / "journal.db-wal") == 0o600
    notes = [line for line in result.stderr.splitlines() if "readable by others" in line]
    assert len(notes) == 3
    assert f"{path} was 0644, readable by others; made it 0600" in result.stderr
    assert fanwise("runs").stderr.count("readable by others") == 0, "said once, not every time"


def test_files_the_user_names_keep_the_users_umask(tmp_path: Path, open_umask: None) -> None:
    """--out and --report are the user's files: under umask 000 they are 0666, not 0600."""
    out, report = tmp_path / "guide.md", tmp_path / "report.html"
    result = fanwise("travel", "Kyoto", *OFFLINE, "--out", str(out), "--report", str(report))
    assert result.exit_code == 0, result.stderr
    assert mode(out) == 0o666 and mode(report) == 0o666


# --no-journal


@pytest.mark.parametrize(
    ("flags", "env"), [(["--no-journal"], {}), ([], {"FANWISE_JOURNAL": "off"})]
)
def test_no_journal_writes_nothing_under_the_home_and_still_prints(
    fanwise_home: Path, flags: list[str], env: dict[str, str]
) -> None:
    """--no-journal (or FANWISE_JOURNAL=off) leaves the home empty and prints the result."""
    result = fanwise("travel", "Kyoto", *OFFLINE, "--json", *flags, env=env)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "complete" and len(document["questions"]) == 3
    assert document["run"] == {"id": None, "journal": None, "resume": None}
    assert files_under(fanwise_home) == []


def test_a_batch_without_journal_writes_only_its_output(fanwise_home: Path, tmp_path: Path) -> None:
    """A batch with --no-journal writes its -o file and nothing under the home."""
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    out = tmp_path / "out.jsonl"
    result = fanwise("batch", str(source), "-o", str(out), *OFFLINE, "--no-journal")
    assert result.exit_code == 0, result.stderr
    assert len(out.read_text().splitlines()) == 2
    assert files_under(fanwise_home) == []


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["travel", "X", "--no-journal", "--cache"], {}, "--cache needs the journal"),
        (["travel", "X", "--cache"], {"FANWISE_JOURNAL": "off"}, "--cache needs the journal"),
        (["travel", "X", "--no-journal", "--journal", "j.db"], {}, "--journal needs the journal"),
        (["resume", "1"], {"FANWISE_JOURNAL": "off"}, "fanwise resume RUN needs the journal"),
        (["report", "1", "-o", "r.html"], {"FANWISE_JOURNAL": "off"}, "report RUN needs the"),
        (["runs"], {"FANWISE_JOURNAL": "off"}, "fanwise runs needs the journal"),
    ],
)
def test_what_needs_the_journal_says_so_before_any_request(
    simulator_process: str,
    fanwise_home: Path,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    """--cache, resume and report with the journal off exit 2, one line, nothing sent or written."""
    url = simulator_process if args[0] == "travel" else None
    result = fanwise(*args, env=env, url=url)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert requests(simulator_process) == 0
    assert files_under(fanwise_home) == []


def test_a_batch_report_without_journal_is_refused(tmp_path: Path) -> None:
    """A batch's --report is read back from the journal: with --no-journal it is a usage error."""
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "a"}\n')
    report = tmp_path / "r.html"
    result = fanwise("batch", str(source), *OFFLINE, "--no-journal", "--report", str(report))
    assert result.exit_code == 2 and "journal, which is off" in result.stderr
    assert not report.exists()


def test_ctrl_c_without_a_journal_prints_no_resume_command(fanwise_home: Path) -> None:
    """SIGINT mid-run with --no-journal exits 130 and offers no `fanwise resume`."""
    args = ("travel", "Kyoto", "--plain", "--no-journal", "--provider", "offline")
    process = subprocess.Popen(
        [sys.executable, "-m", "fanwise", *args, "--offline-latency", "30,30"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": "", "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    seen, deadline = "", time.monotonic() + 30
    while "🔄 Asking" not in seen and time.monotonic() < deadline:
        seen += process.stderr.readline()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "interrupted" in err and "no resume" in err
    assert "fanwise resume" not in err
    assert files_under(fanwise_home) == []


# --journal-content meta


def journal_bytes(path: Path) -> bytes:
    """The database and its -wal and -shm, raw."""
    sides = [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm")]
    return b"".join(p.read_bytes() for p in sides if p.exists())


@pytest.mark.parametrize("content", ["full", "meta"])
def test_meta_keeps_no_prompt_or_answer_text_in_the_file_or_its_wal(
    simulator_process: str, tmp_path: Path, content: str
) -> None:
    """With meta, a marker in the topic, questions and answers is nowhere in the db or WAL
    bytes (read while the WAL is still there); with full, it is (so the check can fail)."""
    path = tmp_path / "journal.db"
    holder = Journal.open(path)  # a reader kept open: the WAL is not folded in and removed
    try:
        result = fanwise(
            "research",
            f"{MARKER} topic",
            *("-q", f"Why {MARKER} one?", "-q", f"Why {MARKER} two?"),
            *("--quiet", "--json"),
            *("--journal", str(path), "--journal-content", content),
            url=simulator_process,
        )
        assert result.exit_code == 0, result.stderr
        assert f"simulated answer to: Why {MARKER} one?" in result.stdout, "answers carry it"
        assert path.with_name("journal.db-wal").exists()
        found = MARKER.encode() in journal_bytes(path)
    finally:
        holder.close()
    assert found is (content == "full")
    assert (MARKER.encode() in path.read_bytes()) is (content == "full")


def test_a_meta_run_still_lists_times_and_costs_but_shows_no_text(simulator_process: str) -> None:
    """runs, show --timeline and the cost work on a meta run; show says the text was not kept,
    and resume refuses (exit 2) rather than send prompts it no longer has."""
    asks = ("-q", f"Why {MARKER} one?", "-q", f"Why {MARKER} two?")
    args = ("research", MARKER, *asks, "--quiet", "--json", "--journal-content", "meta")
    ran = fanwise(*args, url=simulator_process)
    assert ran.exit_code == 0, ran.stderr
    cost = json.loads(ran.stdout)["cost"]["usd"]
    assert cost > 0 and json.loads(ran.stdout)["run"]["resume"] is None

    listed = json.loads(fanwise("runs", "--json").stdout)[0]
    assert listed["content"] == "meta" and listed["totals"]["fulfilled"] == 3
    assert listed["totals"]["cost_usd"] == pytest.approx(cost, abs=1e-6)
    assert MARKER not in json.dumps(listed)

    timeline = fanwise("show", "1", "--timeline")
    rows = [line for line in timeline.stdout.splitlines() if "|" in line]
    # every call on its time axis (a first '.' is a sub-millisecond wait for the limiter)
    assert timeline.exit_code == 0 and rows and all("#" in row for row in rows)
    assert f"question 2 {NOT_KEPT}" in timeline.stdout and MARKER not in timeline.stdout
    shown = fanwise("show", "1", "--json")
    assert shown.exit_code == 0
    assert "kept no prompt or answer text (--journal-content meta)" in shown.stderr
    assert MARKER not in shown.stdout and NOT_KEPT in shown.stdout

    resumed = fanwise("resume", "1")
    assert resumed.exit_code == 2 and "cannot be resumed" in resumed.stderr


async def test_the_cache_never_answers_from_a_meta_run(tmp_path: Path) -> None:
    """A meta run's rows hold no answer, so neither resume nor --cache may reuse them."""
    prices = load_prices()
    call = Call(Request.text("same question"))
    with Journal.open(tmp_path / "j.db", content=Content.META) as journal:
        run = journal.start_run("workflow", "t", {}, endpoint="e")
        outcome = Fulfilled(await ScriptedModel().complete(call.request))
        JournalStore(journal, run, prices=prices, endpoint="e").settle(0, call, outcome)
        journal.flush()  # the writer thread's commit
        assert journal.fulfilled_anywhere(call.key, "e") is None
        assert journal.fulfilled_in_run(run, call.key) is None
        stored = journal.db.execute("SELECT label, request, outcome FROM calls").fetchone()
    assert "same question" not in "".join(stored)
    with Journal.open(tmp_path / "j.db") as journal:
        assert journal.fulfilled_anywhere(call.key, "e") is None, "reopened full: still none"


@pytest.mark.parametrize("content", ["full", "meta"])
def test_meta_keeps_no_text_of_a_staged_plan_or_a_shared_context(
    simulator_process: str, tmp_path: Path, content: str
) -> None:
    """With meta, a marker in a plan of stages (its prompt, questions, instructions, context)
    and in a research run's --context is nowhere in the db; with full, it is."""
    (tmp_path / "notes.md").write_text(f"{MARKER} notes", encoding="utf-8")
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'title = "t"\n[[stage]]\nname = "ask"\ncontext = ["notes.md"]\n'
        f'instructions = "{MARKER} rules"\nquestions = ["Why {MARKER}?"]\n'
        f'[[stage]]\nname = "sum"\nprompt = "Sum up {MARKER}: {{ask}}"\n',
        encoding="utf-8",
    )
    path = tmp_path / "journal.db"
    keep = ("--quiet", "--json", "--journal", str(path), "--journal-content", content)
    staged = fanwise("run", str(plan), *keep, url=simulator_process)
    assert staged.exit_code == 0, staged.stderr
    research = fanwise(
        "research", "t", "-q", "Q?", "--context", str(tmp_path / "notes.md"), *keep,
        url=simulator_process,
    )  # fmt: skip
    assert research.exit_code == 0, research.stderr
    Journal.open(path).close()  # folds the WAL in
    assert (MARKER.encode() in path.read_bytes()) is (content == "full")
    for run in ("1", "2"):  # the saved runs still show their shape
        shown = fanwise("show", run, "--journal", str(path), "--json")
        assert shown.exit_code == 0, shown.stderr
