"""Chaos: ``fanwise batch`` killed, stopped, doubled up and run out of disk, then resumed.

::

    python benchmarks/chaos.py                       # every scenario, 2,000 lines at -c 100
    python benchmarks/chaos.py --lines 20000 --concurrency 200 --kills 17
    python benchmarks/chaos.py --only kill,sigterm

Each scenario runs real ``python -m fanwise`` processes against its own simulator process
(``python -m fanwise.simulator``, loopback, no faults, a fixed latency range) and ends with
``fanwise resume`` run until the batch is complete. It then reports what a user would check:

- answers lost: input lines with no answer (a 200 line) in the final ``-o``;
- duplicate lines: ``custom_id`` values written more than once in ``-o``;
- calls paid twice: the simulator's answered requests beyond one a line (every request is
  answered, so each extra one was paid for again);
- possibly paid: what the journal itself says about it (``unanswered_calls``: calls marked sent
  and never answered, from the write-ahead marks);
- integrity: ``PRAGMA integrity_check`` of the journal.

The scenarios:

- ``kill``: ``kill -9`` a random 0.3 to 0.8 s after the process's first new call row,
  ``--kills`` times, each of the resume started after the one before;
- ``sigterm``: SIGTERM half a second after the first call row (exit 143 and the resume line
  expected), then resume;
- ``two-writers``: two batches writing one journal at once;
- ``journal-full``: the journal on a small tmpfs (exit 5 expected), then the tmpfs grown and the
  run resumed (its answers taken back from ``-o``);
- ``output-full``: ``-o`` on a small tmpfs (exit 6 expected), then grown and resumed.

The two disk-full scenarios mount a tmpfs in a private mount namespace (``unshare -m``, which
needs root); where the machine does not allow it they use a journal or an output that fails on
command after the same share of the run (said in the table).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCENARIOS = ("kill", "sigterm", "two-writers", "journal-full", "output-full")
LATENCY = "uniform:0.05,0.15"
TIMEOUT = 600.0


@dataclass
class Outcome:
    """One scenario's figures."""

    scenario: str
    events: list[str] = field(default_factory=list)
    lines: int = 0
    lost: int = 0
    duplicates: int = 0
    paid_twice: int = 0
    possibly_paid: int = 0
    integrity: str = "?"
    seconds: float = 0.0


@dataclass
class Setup:
    lines: int
    concurrency: int
    kills: int
    workdir: Path
    seed: int


class Simulator:
    """``python -m fanwise.simulator`` on a free loopback port."""

    def __init__(self) -> None:
        command = [sys.executable, "-m", "fanwise.simulator", "--port", "0", "--latency", LATENCY]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line.startswith("fanwise simulator listening on "):
            raise SystemExit(f"the simulator did not start: {line!r}")
        self.base_url = line.split()[-1]

    def answered(self) -> int:
        url = self.base_url.removesuffix("/v1") + "/_stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            counts: dict[str, int] = json.load(response)["attempts"]
        return sum(counts.values())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def write_input(path: Path, n: int, tag: str = "") -> None:
    with path.open("w", encoding="utf-8") as lines:
        for i in range(n):
            prompt = f"{tag}Question {i}: what should a visitor to Kyoto know?"
            lines.write(json.dumps({"prompt": prompt, "custom_id": f"{tag}q{i}"}) + "\n")


def environment(home: Path) -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": "test", "FANWISE_HOME": str(home)}


def batch_command(
    source: Path, output: Path, journal: Path, sim: Simulator, concurrency: int
) -> list[str]:
    return [
        sys.executable, "-m", "fanwise", "batch", str(source), "-o", str(output),
        "--journal", str(journal), "-c", str(concurrency), "--retries", "0", "--quiet",
        "--provider", "openai", "--base-url", sim.base_url, "--model", "gpt-4o-mini",
    ]  # fmt: skip


def resume_command(journal: Path, run_id: int = 1) -> list[str]:
    return [sys.executable, "-m", "fanwise", "resume", str(run_id), "--journal", str(journal)]


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False
    )


def resume_until_done(
    journal: Path, env: dict[str, str], outcome: Outcome, run_id: int = 1
) -> None:
    for _ in range(5):
        done = run([*resume_command(journal, run_id), "--quiet"], env)
        outcome.events.append(f"resume {done.returncode}")
        if done.returncode == 0:
            return
    raise SystemExit(f"{outcome.scenario}: the resume did not finish: {done.stderr[-500:]}")


def measure(
    outcome: Outcome, outputs: list[Path], expected: set[str], journal: Path, sim: Simulator
) -> None:
    """Fill in the figures from the final outputs, the simulator and the journal."""
    ids: Counter[str] = Counter()
    answered: set[str] = set()
    for output in outputs:
        for raw in output.read_bytes().splitlines():
            record = json.loads(raw)  # a torn line fails here, loudly
            ids[record["custom_id"]] += 1
            if (record.get("response") or {}).get("status_code") == 200:
                answered.add(record["custom_id"])
    outcome.lines = len(expected)
    outcome.lost = len(expected - answered)
    outcome.duplicates = sum(n - 1 for n in ids.values() if n > 1)
    outcome.paid_twice = sim.answered() - len(expected)
    db = sqlite3.connect(journal)
    try:
        outcome.integrity = str(db.execute("PRAGMA integrity_check").fetchone()[0])
        unanswered = db.execute("SELECT COALESCE(SUM(unanswered), 0) FROM runs").fetchone()[0]
        open_marks = db.execute("SELECT COUNT(*) FROM sent").fetchone()[0]
        outcome.possibly_paid = int(unanswered) + int(open_marks)
    finally:
        db.close()


def scenario_kill(setup: Setup, sim: Simulator, outcome: Outcome) -> None:
    rng = random.Random(setup.seed)
    work = setup.workdir
    source, output, journal = work / "in.jsonl", work / "out.jsonl", work / "j.db"
    write_input(source, setup.lines)
    env = environment(work / "home")
    command = batch_command(source, output, journal, sim, setup.concurrency)
    for _ in range(setup.kills):
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        _wait_for_calls(journal, process)  # started, with a call recorded (start-up is slow)
        time.sleep(rng.uniform(0.3, 0.8))
        if process.poll() is not None:
            outcome.events.append(f"finished ({process.returncode}) before the kill")
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        outcome.events.append("kill -9")
        command = resume_command(journal)  # each kill is of the resume after it
    resume_until_done(journal, env, outcome)
    measure(outcome, [output], {f"q{i}" for i in range(setup.lines)}, journal, sim)


def _wait_for_calls(journal: Path, process: subprocess.Popen[bytes]) -> None:
    """Until the journal holds one more call row than when this began, or the process ended."""
    start = _calls(journal)
    deadline = time.monotonic() + 60
    while _calls(journal) <= start and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def _calls(journal: Path) -> int:
    if not journal.exists():
        return 0
    try:
        db = sqlite3.connect(journal, timeout=10)
        try:
            return int(db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def scenario_sigterm(setup: Setup, sim: Simulator, outcome: Outcome) -> None:
    work = setup.workdir
    source, output, journal = work / "in.jsonl", work / "out.jsonl", work / "j.db"
    write_input(source, setup.lines)
    env = environment(work / "home")
    process = subprocess.Popen(
        batch_command(source, output, journal, sim, setup.concurrency),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    _wait_for_calls(journal, process)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    said = "resume line" if "fanwise resume 1" in err else "NO resume line"
    outcome.events.append(f"SIGTERM: exit {process.returncode}, {said}")
    resume_until_done(journal, env, outcome)
    measure(outcome, [output], {f"q{i}" for i in range(setup.lines)}, journal, sim)


def scenario_two_writers(setup: Setup, sim: Simulator, outcome: Outcome) -> None:
    work = setup.workdir
    journal = work / "j.db"
    env = environment(work / "home")
    processes, outputs, expected = [], [], set()
    for tag in ("a", "b"):
        source, output = work / f"{tag}.jsonl", work / f"{tag}.out.jsonl"
        write_input(source, setup.lines // 2, f"{tag}-")
        expected |= {f"{tag}-q{i}" for i in range(setup.lines // 2)}
        outputs.append(output)
        command = batch_command(source, output, journal, sim, setup.concurrency)
        processes.append(subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env))
    for process in processes:
        process.communicate(timeout=TIMEOUT)
        outcome.events.append(f"writer exit {process.returncode}")
    measure(outcome, outputs, expected, journal, sim)


def scenario_disk_full(setup: Setup, sim: Simulator, outcome: Outcome, which: str) -> None:
    """The journal's (or the output's) directory on a small tmpfs, filled mid-run, then grown."""
    work = setup.workdir
    small = work / "small"
    small.mkdir()
    source = work / "in.jsonl"
    write_input(source, setup.lines)
    on_tmpfs = _mount(small, "1m" if which == "journal" else "256k")
    journal = (small if which == "journal" else work) / "j.db"
    output = (small if which == "output" else work) / "out.jsonl"
    env = environment(work / "home")
    command = batch_command(source, output, journal, sim, setup.concurrency)
    if not on_tmpfs:  # no mount namespace here: a store that fails on command
        outcome.events.append("(no tmpfs: fails on command)")
        limits = ["300", "-"] if which == "journal" else ["-", "250000"]
        command = [sys.executable, "-c", FAILING, *limits, *command[3:]]
    first = run(command, env)
    errors = [line for line in first.stderr.splitlines() if "error" in line]
    said = f"{len(errors)} error line" + ("" if len(errors) == 1 else "s")
    outcome.events.append(f"{which} full: exit {first.returncode}, {said}")
    if on_tmpfs:
        subprocess.run(["mount", "-o", "remount,size=512m", str(small)], check=True)
        outcome.events.append("tmpfs grown")
    resume_until_done(journal, env, outcome)
    measure(outcome, [output], {f"q{i}" for i in range(setup.lines)}, journal, sim)


def _mount(folder: Path, size: str) -> bool:
    """A tmpfs of ``size`` at ``folder``, if this process may (inside ``unshare -m``)."""
    if os.environ.get("FANWISE_CHAOS_NAMESPACE") != "1":
        return False
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


FAILING = """
import errno, os, sqlite3, sys
journal_after, output_after = (None if a == "-" else int(a) for a in sys.argv[1:3])
sys.argv = ["fanwise", *sys.argv[3:]]
if journal_after is not None:
    from fanwise.journal import writer
    execute, rows = writer.Writer._execute, [0]
    def full(self, db, item, pending):
        calls = sum(1 for table, _ in item if table.calls)
        rows[0] += calls
        if rows[0] > journal_after:
            error = sqlite3.OperationalError("database or disk is full")
            self._failed(db, pending + calls, error)
            return 0
        return execute(self, db, item, pending)
    writer.Writer._execute = full
if output_after is not None:
    from fanwise.batch import sink
    write = sink.LineSink._write
    def full_output(self, fd, data):
        if self.size + len(data) > output_after:
            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write(self, fd, data)
    sink.LineSink._write = full_output
from fanwise.cli import main
main()
"""


RUNNERS: dict[str, Callable[[Setup, Simulator, Outcome], None]] = {
    "kill": scenario_kill,
    "sigterm": scenario_sigterm,
    "two-writers": scenario_two_writers,
    "journal-full": lambda s, sim, o: scenario_disk_full(s, sim, o, "journal"),
    "output-full": lambda s, sim, o: scenario_disk_full(s, sim, o, "output"),
}


def one(name: str, setup: Setup) -> Outcome:
    outcome = Outcome(name)
    sim = Simulator()
    started = time.monotonic()
    try:
        RUNNERS[name](setup, sim, outcome)
    finally:
        sim.stop()
    outcome.seconds = time.monotonic() - started
    return outcome


def namespaced(name: str, setup: Setup) -> Outcome:
    """Run a disk-full scenario in a private mount namespace, where it may mount a tmpfs."""
    command = [
        "unshare", "-m", "--propagation", "private", sys.executable, __file__, "--inner", name,
        "--lines", str(setup.lines), "--concurrency", str(setup.concurrency),
        "--workdir", str(setup.workdir), "--seed", str(setup.seed),
    ]  # fmt: skip
    env = {**os.environ, "FANWISE_CHAOS_NAMESPACE": "1"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False
        )
    except FileNotFoundError:
        return one(name, setup)
    if done.returncode != 0 or not done.stdout.strip():
        return one(name, setup)  # unshare refused: fail on command instead
    return Outcome(**json.loads(done.stdout))


def table(outcomes: list[Outcome], setup: Setup) -> str:
    head = (
        f"{setup.lines:,} lines at -c {setup.concurrency}, simulator latency {LATENCY}\n\n"
        "| scenario | what happened | answers lost | duplicate lines | calls paid twice "
        "| possibly paid (journal) | integrity | time |\n| --- | --- | --- | --- | --- | --- "
        "| --- | --- |\n"
    )
    rows = []
    for o in outcomes:
        events = "; ".join(_squash(o.events))
        rows.append(
            f"| {o.scenario} | {events} | {o.lost} | {o.duplicates} | {o.paid_twice} "
            f"| {o.possibly_paid} | {o.integrity} | {o.seconds:.0f} s |"
        )
    return head + "\n".join(rows)


def _squash(events: list[str]) -> list[str]:
    """``kill -9`` five times in a row as ``kill -9 ×5``."""
    out: list[str] = []
    for event, count in _runs(events):
        out.append(event if count == 1 else f"{event} ×{count}")
    return out


def _runs(events: list[str]) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for event in events:
        if runs and runs[-1][0] == event:
            runs[-1] = (event, runs[-1][1] + 1)
        else:
            runs.append((event, 1))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:  # inside unshare: one scenario, its figures as JSON
        setup = Setup(args.lines, args.concurrency, 0, args.workdir, args.seed)
        print(json.dumps(asdict(one(args.inner, setup))))
        return
    names = args.only.split(",") if args.only else list(SCENARIOS)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="fanwise-chaos-") as root:
        for name in names:
            workdir = Path(root) / name
            workdir.mkdir()
            setup = Setup(args.lines, args.concurrency, args.kills, workdir, args.seed)
            run_it = namespaced if name.endswith("-full") else one
            outcome = run_it(name, setup)
            print(f"{name}: {outcome}", file=sys.stderr, flush=True)
            outcomes.append(outcome)
    print(table(outcomes, Setup(args.lines, args.concurrency, args.kills, Path(), args.seed)))


if __name__ == "__main__":
    main()
