"""Issue 14: each input that once crashed, spent money or lost work, and what it does now.

Each test names its case from the issue. Calls that could cost money go to a real simulator
subprocess over loopback HTTP, whose ``/_stats`` proves how many requests it saw.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fanwise.cli import cli

FAST = ("--offline-latency", "0,0.01")
NO_KEY = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}


def fanwise(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """The CLI in-process with no key in the environment (or ``env`` laid over that)."""
    return CliRunner().invoke(cli, list(args), env={**NO_KEY, **(env or {})}, input=stdin)


def requests_seen(url: str) -> int:
    """How many API requests the simulator at ``url`` has answered."""
    with urllib.request.urlopen(url.removesuffix("/v1") + "/_stats", timeout=10) as response:
        data: dict[str, Any] = json.load(response)
    return int(data["requests"])


# 7, 8: the journal read back


def test_show_with_a_huge_run_id_is_a_usage_error_not_an_overflow() -> None:
    """Case 7: a run id past SQLite's integers exits 2 with the range, not an OverflowError."""
    for command in ("show", "report", "resume", "export"):
        extra = ["-o", "x.html"] if command == "report" else []
        result = fanwise(command, "99999999999999999999999", *extra)
        assert result.exit_code == 2, (command, result.output)
        assert "not in the range" in result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_read_only_commands_never_create_a_journal(tmp_path: Path) -> None:
    """Case 8: show, report, resume, export and prune on a missing journal create no file."""
    missing = tmp_path / "missing.db"
    for args in (
        ["show", "1"],
        ["report", "1", "-o", str(tmp_path / "r.html")],
        ["resume", "1"],
        ["export", "1"],
        ["prune", "--keep", "1"],
    ):
        result = fanwise(*args, "--journal", str(missing))
        assert result.exit_code == 2, (args, result.output)
        assert f"no journal at {missing}" in result.stderr
        assert not missing.exists(), args
    listing = fanwise("runs", "--journal", str(missing))
    assert listing.exit_code == 0 and "No runs yet" in listing.stderr
    assert not missing.exists()


# 12: one word once


def test_a_fail_fast_cancellation_says_cancelled_once() -> None:
    """Case 12: a sibling cancelled by --mode all reads "cancelled: a sibling call failed"."""
    result = fanwise(
        "research", "tea", *(f"-q{n}?" for n in "abcdef"), "--offline-latency", "0.05,1",
        "--offline-fail-rate", "0.5", "--retries", "0", "--mode", "all", "--plain", "--seed", "1",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "cancelled: a sibling call failed (fail-fast mode)" in result.stderr
    assert "cancelled: cancelled" not in result.stderr


# 17: prune and export


def test_prune_keeps_the_newest_runs_and_vacuums(tmp_path: Path) -> None:
    """Case 17: --keep N deletes the older runs and their calls, and the file shrinks."""
    journal = str(tmp_path / "j.db")
    big = "x" * 200_000
    for n in range(3):
        args = ("research", f"t{n}", "-q", f"{big}{n}?", *FAST, "--quiet", "--journal", journal)
        assert fanwise(*args).exit_code == 0
    size = os.path.getsize(journal)
    result = fanwise("prune", "--keep", "1", "--journal", journal)
    assert result.exit_code == 0, result.output
    assert "pruned 2 runs (4 calls)" in result.stderr
    listed = json.loads(fanwise("runs", "--json", "--journal", journal).stdout)
    assert [run["topic"] for run in listed] == ["t2"]
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 2
    assert os.path.getsize(journal) < size / 2


def test_prune_older_than_deletes_only_old_runs(tmp_path: Path) -> None:
    """Case 17: --older-than 30d deletes the runs started before then, not the recent one."""
    journal = str(tmp_path / "j.db")
    for topic in ("old", "new"):
        assert fanwise("research", topic, "-q", "why?", *FAST, "--journal", journal).exit_code == 0
    with sqlite3.connect(journal) as db:
        db.execute(
            "UPDATE runs SET started_at = ? WHERE topic = 'old'", (time.time() - 31 * 86400,)
        )
    assert fanwise("prune", "--older-than", "30d", "--journal", journal).exit_code == 0
    listed = json.loads(fanwise("runs", "--json", "--journal", journal).stdout)
    assert [run["topic"] for run in listed] == ["new"]
    bad = fanwise("prune", "--older-than", "soon", "--journal", journal)
    assert bad.exit_code == 2 and "not an age like 30d" in bad.stderr


def test_export_writes_a_run_as_jsonl(tmp_path: Path) -> None:
    """Case 17: `fanwise export RUN` writes the run, then one line per call with its outcome."""
    assert fanwise("research", "tea", "-q", "a?", "-q", "b?", *FAST, "--quiet").exit_code == 0
    out = tmp_path / "run.jsonl"
    assert fanwise("export", "1", "-o", str(out)).exit_code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["run", "call", "call", "call"]
    assert lines[0]["topic"] == "tea" and lines[0]["spec"]["plan"]["questions"] == ["a?", "b?"]
    assert [line["status"] for line in lines[1:]] == ["fulfilled"] * 3
    assert "a?" in json.dumps(lines[1]["request"]) and lines[1]["value"]
    assert fanwise("export", "1").stdout == out.read_text()


# 18: runs, -n, run --help


def test_runs_counts_research_and_synthesis_apart() -> None:
    """Case 18: 2 of 3 answered plus a synthesis shows OK 2, FAILED 1, SYNTHESIS ok."""
    result = fanwise(
        "research", "tea", "-q", "a?", "-q", "b?", "-q", "c?", *FAST, "--offline-fail-rate",
        "0.5", "--retries", "0", "--seed", "3", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 4
    header, row = fanwise("runs").stdout.splitlines()
    assert header.split()[4:7] == ["OK", "FAILED", "SYNTHESIS"]
    assert row.split()[5:8] == ["2", "1", "ok"]
    [listed] = json.loads(fanwise("runs", "--json").stdout)
    assert listed["research"] == {"fulfilled": 2, "rejected": 1} and listed["synthesis"] == "ok"


def test_runs_n_and_run_have_help_that_names_what_they_take() -> None:
    """Case 18: `runs --help` explains -n; `run --help` lists the built-in plans."""
    assert "How many runs to list" in fanwise("runs", "--help").stdout
    assert "Built-in plans: city-districts, travel" in fanwise("run", "--help").stdout


# 5: a reader that goes away


def test_a_reader_that_goes_away_mid_stream_is_not_a_failed_run(tmp_path: Path) -> None:
    """Case 5: `| head -1` on a streamed synthesis: exit 0, no traceback, the journal complete."""
    journal = str(tmp_path / "j.db")
    command = [sys.executable, "-m", "fanwise", "travel", "Kyoto", "--quiet"]
    command += ["--offline-latency", "0.3,0.6", "--journal", journal]
    env = {**os.environ, **NO_KEY}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        assert child.stdout.readline().startswith(b"# Kyoto")
        child.stdout.close()  # the reader goes away while the synthesis is still streaming
        stderr = child.stderr.read().decode()
        code = child.wait(timeout=60)
    assert code == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert "synthesis failed" not in stderr
    [run] = json.loads(fanwise("runs", "--json", "--journal", journal).stdout)
    assert run["status"] == "complete" and run["synthesis"] == "ok"
    shown = fanwise("show", "1", "--journal", journal).stdout
    assert shown.startswith("# Kyoto") and len(shown.splitlines()) > 5


# 6, 10: files that are not what they seem


def test_a_plan_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    """Case 6: a Latin-1 plan is `file:line: not UTF-8 text`, exit 2, not a UnicodeDecodeError."""
    plan = tmp_path / "latin1.toml"
    plan.write_bytes(b'title = "x"\ntopic = "caf\xe9"\n[research]\nquestions = ["a?"]\n')
    result = fanwise("run", str(plan))
    assert result.exit_code == 2
    assert f"{plan}:2: not UTF-8 text (byte 0xe9)" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_plan_with_a_bom_and_crlf_runs(tmp_path: Path) -> None:
    """Case 6: a plan saved by an editor that writes a BOM and CRLF line ends runs as written."""
    plan = tmp_path / "bom.toml"
    plan.write_bytes(b'\xef\xbb\xbftopic = "tea"\r\n[research]\r\nquestions = ["why?"]\r\n')
    result = fanwise("run", str(plan), *FAST, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# tea")


def test_run_on_a_directory_says_it_is_a_directory(tmp_path: Path) -> None:
    """Case 10: `fanwise run DIR` says DIR is a directory, not "no such plan file"."""
    result = fanwise("run", str(tmp_path))
    assert result.exit_code == 2
    assert f"{tmp_path}: is a directory" in result.stderr


def test_simulate_on_a_busy_port_exits_2_naming_the_port() -> None:
    """Case 10: a port already taken is a usage error (exit 2) that names the port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = fanwise("simulate", "--port", str(port))
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "choose another --port" in result.stderr


# 9: the Python API without a key


def test_openai_model_without_a_key_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Case 9: OpenAIModel() with no key raises a ValueError naming OPENAI_API_KEY, not the
    SDK's raw error; both transports say the same, and a base URL needs no key."""
    from fanwise.models.fast import FastOpenAIModel
    from fanwise.models.openai import OpenAIModel

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    for model in (OpenAIModel, FastOpenAIModel):
        with pytest.raises(ValueError, match="set the OPENAI_API_KEY environment variable"):
            model()
    local = OpenAIModel(base_url="http://127.0.0.1:9/v1")
    assert local.client.api_key == "not-needed"


# 16: a big batch without a terminal


def test_a_batch_without_a_terminal_prints_counts_not_a_line_per_call(tmp_path: Path) -> None:
    """Case 16: 500 lines through a pipe print a few lines of counts; --plain prints them all."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"prompt": f"q{n}"}) + "\n" for n in range(500)))
    args = ("batch", str(source), "-o", str(tmp_path / "out.jsonl"), *FAST, "-c", "50")
    quiet = fanwise(*args)
    assert quiet.exit_code == 0, quiet.output
    assert len(quiet.stderr.splitlines()) < 10
    assert "500 fulfilled" in quiet.stderr
    every = fanwise(*args, "--plain")
    assert len(every.stderr.splitlines()) >= 1000


def test_the_periodic_summary_counts_and_shows_failures_at_once() -> None:
    """Case 16: a line of counts once the interval has passed; each failure at once."""
    from fanwise.events import CallRetrying, CallSettled
    from fanwise.outcome import Fulfilled, Rejected, ServerError
    from fanwise.ui.periodic import PeriodicConsole

    now = [0.0]
    stream = io.StringIO()
    console = PeriodicConsole(stream, total=3, every=5, clock=lambda: now[0])
    ok = Fulfilled("x", 0.1, 0.0, ())
    console(CallSettled(0, "k0", "first", ok, at=0))  # type: ignore[arg-type]
    console(CallRetrying(1, "k1", "second", 1, {"kind": "server", "message": "boom"}, 1.0, at=0))
    console(CallSettled(1, "k1", "second", Rejected(ServerError("boom")), at=1))
    assert stream.getvalue() == "❌ Failed: second: server: boom\n"
    now[0] = 6.0
    console(CallSettled(2, "k2", "third", ok, at=6))  # type: ignore[arg-type]
    assert stream.getvalue().splitlines()[-1] == (
        "⏱ 3/3 settled: 2 fulfilled, 1 failed, 1 retries · 6 s"
    )


# 11: Ctrl-C as the loop closes


def test_no_signal_wakeup_fd_is_left_on_a_closing_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Case 11: when the loop closes its self-pipe, no wakeup fd points at it any more, so a
    Ctrl-C in that window cannot print "signal wakeup fd ... Bad file descriptor"."""
    import asyncio.unix_events

    from fanwise.cli.interrupt import run_interruptible

    seen: list[int] = []
    close = asyncio.unix_events._UnixSelectorEventLoop.close

    def recording_close(loop: asyncio.AbstractEventLoop) -> None:
        wakeup = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(wakeup)
        seen.append(wakeup)
        close(loop)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio.unix_events._UnixSelectorEventLoop, "close", recording_close)
    before = signal.getsignal(signal.SIGINT)

    async def main() -> str:
        return "done"

    assert run_interruptible(main()) == "done"
    assert seen == [-1]
    assert signal.getsignal(signal.SIGINT) is before


# The README's sample output


def test_the_readme_sample_is_what_travel_prints_today() -> None:
    """Every line of README's `fanwise travel Kyoto --plain` sample is printed today, in order
    (timings aside: they are measured), the token count and the cost suffix included."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("```console\n$ .venv/bin/fanwise travel Kyoto --plain", 1)[1]
    sample = [line for line in block.split("```", 1)[0].splitlines()[1:] if line != "..."]
    result = CliRunner().invoke(cli, ["travel", "Kyoto", "--plain"], env=NO_KEY)
    assert result.exit_code == 0

    def timeless(line: str) -> str:
        return re.sub(r"\d+\.\d+( s|×)", r"#\1", line)

    printed = iter(timeless(line) for line in result.output.splitlines())
    for line in sample:
        assert timeless(line) in printed, f"README line not printed (or out of order): {line}"


# 3: where a result is kept when its file cannot be written


def test_show_writes_a_run_to_a_file(tmp_path: Path) -> None:
    """Case 3: `fanwise show N -o FILE` writes what show prints; a bad path is exit 2."""
    assert fanwise("research", "tea", "-q", "a?", *FAST, "--quiet").exit_code == 0
    out = tmp_path / "again.md"
    assert fanwise("show", "1", "-o", str(out)).exit_code == 0
    assert out.read_text() == fanwise("show", "1").stdout
    missing = fanwise("show", "1", "-o", str(tmp_path / "nope" / "x.md"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


# 1: a base URL is a server to ask, never the offline model


def test_a_base_url_chooses_the_compatible_provider_without_a_key() -> None:
    """Case 1: with no key, a base URL (argument or OPENAI_BASE_URL) means openai, not offline."""
    from fanwise.models import choose_provider

    assert choose_provider("auto", {}) == "offline"
    assert choose_provider("auto", {}, base_url="http://127.0.0.1:8000/v1") == "openai"
    assert choose_provider("auto", {"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}) == "openai"
    assert choose_provider("offline", {}, base_url="http://127.0.0.1:8000/v1") == "offline"


def test_ctrl_c_while_the_cli_loads_exits_130_without_a_traceback() -> None:
    """Case 11: a Ctrl-C while `fanwise` is still importing its CLI (a second on a busy
    machine) exits 130 with one line, not a KeyboardInterrupt traceback from an import."""
    program = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'fanwise.cli':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from fanwise.__main__ import main\n"
        "main()\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 130
    assert "Traceback" not in child.stderr and "fanwise: interrupted" in child.stderr


def test_ctrl_c_before_the_run_starts_exits_130_not_aborted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 11: a Ctrl-C while the flags are read or the input counted (before the run's own
    handler) exits 130, not click's "Aborted!" with exit 1."""
    import fanwise.cli
    import fanwise.cli.batch

    def interrupted(path: Path) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(fanwise.cli.batch, "count_lines", interrupted)
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "a"}\n')
    monkeypatch.setattr(sys, "argv", ["fanwise", "batch", str(source)])
    with pytest.raises(SystemExit) as stopped:
        fanwise.cli.main()
    assert stopped.value.code == 130


# 1-4: nothing paid for before a mistake is noticed (the simulator counts the requests)


def test_a_base_url_without_a_key_asks_that_server(simulator_process: str, tmp_path: Path) -> None:
    """Case 1: `batch --base-url URL` with no OPENAI_API_KEY asks the server, not the offline
    model (it used to answer 120 lines from `offline/gpt-5`, exit 0, nothing on stderr)."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"prompt": f"q{n}"}) + "\n" for n in range(3)))
    out = tmp_path / "out.jsonl"
    result = fanwise("batch", str(source), "-o", str(out), "--base-url", simulator_process)
    assert result.exit_code == 0, result.output
    assert requests_seen(simulator_process) == 3
    assert "offline" not in out.read_text() and "offline model" not in result.stderr


def test_batch_refuses_to_write_over_its_input(simulator_process: str, tmp_path: Path) -> None:
    """Case 2: `batch same.jsonl -o same.jsonl` (or a link to it) is exit 2 and the input is
    left whole (it used to be emptied, exit 1, no message); no request is sent."""
    source = tmp_path / "same.jsonl"
    text = json.dumps({"prompt": "a"}) + "\n"
    source.write_text(text)
    (tmp_path / "link.jsonl").symlink_to(source)
    os.link(source, tmp_path / "hard.jsonl")
    for out in ("same.jsonl", "link.jsonl", "hard.jsonl"):
        result = fanwise(
            "batch", str(source), "-o", str(tmp_path / out), "--base-url", simulator_process,
            env={"OPENAI_API_KEY": "test"},
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "is the input file" in result.stderr
        assert source.read_text() == text
    assert requests_seen(simulator_process) == 0


def test_every_output_path_is_checked_before_the_first_call(
    simulator_process: str, tmp_path: Path
) -> None:
    """Case 3: --out into a missing directory or a read-only file, and --report likewise, are
    exit 2 before any request (they used to fail after every call was paid for)."""
    locked = tmp_path / "locked.md"
    locked.write_text("old")
    locked.chmod(0o444)
    key = {"OPENAI_API_KEY": "test"}
    target = ("--base-url", simulator_process)
    for flag, path, message in [
        ("--out", str(tmp_path / "missing" / "x.md"), "does not exist"),
        ("--report", str(tmp_path / "missing" / "x.html"), "does not exist"),
        ("--out", str(tmp_path), "is a directory"),
    ] + ([] if os.geteuid() == 0 else [("--out", str(locked), "is not writable")]):
        result = fanwise("travel", "Kyoto", flag, path, *target, env=key)
        assert result.exit_code == 2, (flag, path, result.output)
        assert path in result.stderr and message in result.stderr
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"prompt": "a"}) + "\n")
    bad = str(tmp_path / "missing" / "r.html")
    result = fanwise("batch", str(source), "--report", bad, *target, env=key)
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert requests_seen(simulator_process) == 0


def test_an_output_that_fails_at_the_end_says_where_the_result_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 3: if --out still cannot be written after the calls, stderr says `fanwise show N
    -o ...`, exit 1, with no traceback."""
    out = tmp_path / "guide.md"
    real = Path.write_text

    def full_disk(self: Path, *args: Any, **kwargs: Any) -> int:
        if self == out:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    result = fanwise("travel", "Kyoto", *FAST, "--quiet", "--out", str(out))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "No space left on device; the result is kept in the journal" in result.stderr
    assert "fanwise show 1 -o FILE" in result.stderr


def test_bad_values_found_only_after_the_calls_are_refused_first(simulator_process: str) -> None:
    """Case 4: `travel ""`, --min-answers above the question count and a base URL without a
    scheme are exit 2 before any request (no "...to visit in ?", no nine network retries)."""
    key = {"OPENAI_API_KEY": "test"}
    sim = ("--base-url", simulator_process)
    for args, message in [
        (("travel", "", *sim), "DESTINATION must not be empty"),
        (("travel", "  ", *sim), "DESTINATION must not be empty"),
        (("research", "", "-q", "a?", *sim), "TOPIC must not be empty"),
        (("research", "t", "-q", "a?", "-q", "b?", "--min-answers", "5", *sim), "only 2 questions"),
        (("run", "travel", "--set", "destination=", *sim), "needs a value for destination"),
        (("travel", "K", "--base-url", simulator_process.removeprefix("http://")), "http://"),
        (("travel", "K", *sim, "--timeout", "nan"), "'nan' is not a finite number"),
    ]:
        result = fanwise(*args, env=key)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    assert requests_seen(simulator_process) == 0


# 13: questions and batch lines from files and stdin


def test_batch_dash_reads_standard_input(tmp_path: Path) -> None:
    """Case 13: `fanwise batch -` reads its lines from stdin, and its spooled copy is gone once
    the run is complete."""
    lines = "".join(json.dumps({"prompt": f"q{n}", "custom_id": f"c{n}"}) + "\n" for n in range(3))
    result = fanwise("batch", "-", *FAST, "--quiet", stdin=lines)
    assert result.exit_code == 0, result.output
    ids = sorted(json.loads(line)["custom_id"] for line in result.stdout.splitlines())
    assert ids == ["c0", "c1", "c2"]
    assert not list((Path(os.environ["FANWISE_HOME"]) / "inputs").iterdir())


def test_questions_come_from_at_files_and_questions_file(tmp_path: Path) -> None:
    """Case 13: -q @FILE and --questions-file read one question a line (blank lines skipped);
    a missing or empty file is exit 2."""
    listed = tmp_path / "questions.txt"
    listed.write_text("Which grinder?\n\nWhich beans?\n")
    result = fanwise(
        "research", "coffee", "-q", f"@{listed}", "-q", "Which machine?", "--questions-file", "-",
        *FAST, "--quiet", "--json", stdin="Which water?\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    asked = [q["question"] for q in json.loads(result.stdout)["questions"]]
    assert asked == ["Which grinder?", "Which beans?", "Which machine?", "Which water?"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    for args, message in [
        (("-q", f"@{tmp_path / 'nope.txt'}"), "no such file"),
        (("--questions-file", str(empty)), "no questions in it"),
        ((), "no questions: give -q QUESTION"),
    ]:
        failed = fanwise("research", "coffee", *args)
        assert failed.exit_code == 2 and message in failed.stderr, (args, failed.output)


# 14: resume with the flags that may have to change


def test_resume_takes_a_new_server_pace_and_display(
    spawn_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """Case 14: a --quiet run on a dead server is resumed with --base-url (a healthy one),
    --rpm, --tpm, --timeout, --concurrency, --endpoints-free, and --no-quiet shows progress."""
    dead = spawn_simulator("--fail", "500=1")
    healthy = spawn_simulator()
    key = {"OPENAI_API_KEY": "test"}
    first = fanwise(
        "research", "tea", "-q", "a?", "-q", "b?", "--retries", "0", "--quiet",
        "--base-url", dead.base_url, env=key,
    )  # fmt: skip
    assert first.exit_code == 1 and "🔄" not in first.stderr
    resumed = fanwise(
        "resume", "1", "--base-url", healthy.base_url, "--no-quiet", "--plain", "--rpm", "600",
        "--tpm", "1000000", "--timeout", "30", "--concurrency", "2", env=key,
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert "🔄 Asking: a?" in resumed.stderr
    assert requests_seen(healthy.base_url) == 3  # two questions and the synthesis
    [run] = json.loads(fanwise("runs", "--json").stdout)
    assert run["status"] == "complete" and run["research"] == {"fulfilled": 2, "rejected": 0}
    listed = fanwise("resume", "--help").stdout
    for flag in ("--base-url", "--endpoints", "--rpm", "--tpm", "--timeout", "--no-quiet"):
        assert flag in listed
