"""Fan-out overhead, side by side: every contender against one simulator, each in its own process.

::

    make bench                                  # the full run (~6 minutes), writes the docs
    python benchmarks/fanout.py --quick         # N = 3, 100, 1,000 only (~1 minute)
    python benchmarks/fanout.py --only fanwise-api,aiohttp-floor --sizes 10000
    python benchmarks/fanout.py --sizes 5000 --no-write   # issue 13's plain-server case only
    python benchmarks/fanout.py --sizes 10000 --only aiohttp-floor,fanwise-cli --rounds 5 --no-write

The simulator runs as ``python -m fanwise.simulator`` in a separate process with a fixed latency
(0.2 s). Each contender (see ``fanout_contenders.py``; the CLI is a real ``fanwise batch``
process) runs in a fresh child process; its CPU time and peak RSS come from ``getrusage`` and
``wait4``, so the simulator's CPU is never counted. Prints, per size and concurrency: wall time,
its ratio to the ideal ``ceil(N / concurrency) × latency``, calls per second, CPU per call, peak
RSS and the ratios to the aiohttp floor of the same case (with ``--rounds R``, the median of R
runs, the case's contenders alternated round by round: this machine's speed drifts by a third
within minutes, and a floor measured a minute apart from its contender moved the ratio by as
much); then checks issue 6's targets, and issue
13's: the CLI with its default flags at N = 5,000, concurrency 500, against a second simulator
that sends no rate-limit headers (a plain server: vLLM, Ollama, a proxy). Writes
the table between the markers of ``docs/benchmarks.md`` and the plot ``docs/benchmarks.png``.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fanout_report import (
    PLAIN,
    Case,
    Result,
    check_targets,
    render_markdown,
    render_plot,
    text_table,
)
from simulator_process import Simulator

ROOT = Path(__file__).resolve().parent.parent
CONTENDERS_SCRIPT = Path(__file__).resolve().parent / "fanout_contenders.py"
LATENCY = 0.2  # seconds: fixed, so the ideal is exact
CHILD_TIMEOUT = 300.0  # seconds any one contender may take before it is killed
GRID = {3: (8,), 100: (8, 100), 1000: (100, 1000), 10_000: (1000,)}
"""The concurrencies each N runs at: as they fit in the ~10 minute budget."""
QUICK_GRID = {3: (8,), 100: (100,), 1000: (1000,), 10_000: (1000,)}
ORDER = (
    "aiohttp-floor",
    "fanwise-api",
    "fanwise-cli",
    "fanwise-cli-no-adapt",
    "fanwise-api-sdk",
    "sdk-gather",
    "langchain-abatch",
    "sdk-sequential",
)


def cases(sizes: list[int], quick: bool, only: set[str] | None, plain: bool) -> list[Case]:
    """Every run, the floor first in each (N, concurrency) so the ratios have their base."""
    chosen = [c for c in ORDER if only is None or c in only]
    result: list[Case] = []
    for n in sizes:
        if n == PLAIN[0]:
            continue  # the plain server's size: below
        if "sdk-sequential" in chosen and n <= (3 if quick else 100):
            result.append(Case("sdk-sequential", n, 1))  # one at a time: only small N fit
        for concurrency in (QUICK_GRID if quick else GRID).get(n, (min(n, 1000),)):
            result += [
                Case(c, n, concurrency)
                for c in chosen
                if c != "sdk-sequential" and (c != "fanwise-cli-no-adapt" or n >= 1000)
            ]
    if plain:  # issue 13: the default flags against a server that sends no headers
        plain = ("aiohttp-floor", "fanwise-cli", "fanwise-cli-no-adapt")
        result += [Case(c, *PLAIN, "plain") for c in plain if c in chosen]
    return result


@dataclass(frozen=True)
class Child:
    """What a finished child process cost: from ``wait4``, so only its own resources."""

    stdout: str
    stderr: str
    wall: float
    cpu: float
    max_rss_mb: float
    returncode: int


def run_child(command: list[str], env: dict[str, str], timeout: float = CHILD_TIMEOUT) -> Child:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        killer = threading.Timer(timeout, process.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Child(
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,  # Linux reports kilobytes
            process.returncode,
        )


class Failed(Exception):
    """A contender that did not finish: reported in the notes, the run goes on."""


def _last(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def measure(case: Case, sim: Simulator, workdir: Path, env: dict[str, str]) -> Result:
    sim.reset()
    if case.contender.startswith("fanwise-cli"):
        child, wall, cpu, ok = _cli(case, sim, workdir, env)
    else:
        command = [sys.executable, str(CONTENDERS_SCRIPT), case.contender, sim.base_url]
        child = run_child([*command, str(case.n), str(case.concurrency)], env)
        if child.returncode != 0:
            raise Failed(f"{case.contender} failed ({child.returncode}): {_last(child.stderr)}")
        report = json.loads(child.stdout.splitlines()[-1])
        wall, cpu, ok = report["wall"], report["cpu"], report["ok"]
    stats = sim.stats()
    served, peak = int(stats["by_status"].get("200", 0)), int(stats["peak_in_flight"])
    return Result(case, wall, cpu, ok, child.max_rss_mb, served, peak, LATENCY)


def _cli(
    case: Case, sim: Simulator, workdir: Path, env: dict[str, str]
) -> tuple[Child, float, float, int]:
    """``fanwise batch`` as a user runs it: the whole process (startup included) is measured."""
    source = workdir / f"batch-{case.n}.jsonl"
    if not source.exists():
        with source.open("w", encoding="utf-8") as lines:
            for i in range(case.n):
                prompt = f"Question {i}: what should a visitor to Kyoto know?"
                lines.write(json.dumps({"prompt": prompt, "custom_id": f"q{i}"}) + "\n")
    output = workdir / "batch-out.jsonl"
    command = [sys.executable, "-m", "fanwise", "batch", str(source), "--out", str(output)]
    command += ["--provider", "openai", "--base-url", sim.base_url, "--quiet"]
    command += ["--concurrency", str(case.concurrency), "--reasoning-effort", "minimal"]
    if case.contender == "fanwise-cli-no-adapt":
        command.append("--no-adapt")  # no AIMD slow start, no header pacing: the limiter's share
    child = run_child(command, {**env, "FANWISE_HOME": str(workdir / "home")})
    if child.returncode != 0:
        raise Failed(f"fanwise batch failed ({child.returncode}): {_last(child.stderr)}")
    with output.open(encoding="utf-8") as results:
        ok = sum(json.loads(line)["response"] is not None for line in results)
    return child, child.wall, child.cpu, ok


def cli_startup(workdir: Path, env: dict[str, str]) -> Child:
    """``fanwise batch`` on an empty file: what the CLI rows pay before their first call."""
    empty = workdir / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    command = [sys.executable, "-m", "fanwise", "batch", str(empty), "--out", os.devnull]
    command += ["--provider", "openai", "--base-url", "http://127.0.0.1:9/v1", "--quiet"]
    return run_child(command, {**env, "FANWISE_HOME": str(workdir / "home")})


def seed_phase(
    sim: Simulator, workdir: Path, env: dict[str, str], transport: str
) -> dict[str, float]:
    """``fanwise travel Kyoto`` (three questions, the seed): research phase against its calls."""
    command = [sys.executable, "-m", "fanwise", "travel", "Kyoto", "--json", "--quiet"]
    command += ["--provider", "openai", "--base-url", sim.base_url, "--transport", transport]
    child = run_child(command, {**env, "FANWISE_HOME": str(workdir / "home")})
    if child.returncode != 0:
        raise SystemExit(f"fanwise travel failed:\n{child.stderr[-3000:]}")
    data = json.loads(child.stdout)
    return {
        "research": data["stats"]["wall_time"],
        "slowest": max(q["latency"] for q in data["questions"]),
        "latency": LATENCY,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 3, 100, 1,000 only")
    parser.add_argument("--sizes", help="comma-separated N, e.g. 1000,10000")
    parser.add_argument("--only", help="comma-separated contenders, e.g. fanwise-api,aiohttp-floor")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run each (N, concurrency) group this many times, its contenders alternated, and "
        "report each contender's median: the floor and fanwise then see the same load",
    )
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "benchmarks.png")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    sizes = sizes or ([3, 100, 1000] if args.quick else [3, 100, 1000, 10_000])
    only = set(args.only.split(",")) if args.only else None
    notes: list[str] = []
    if importlib.util.find_spec("langchain_openai") is None:
        notes.append(
            "LangChain skipped: langchain-openai is not installed (pip install '.[bench]')."
        )
        only = (only or set(ORDER)) - {"langchain-abatch"}
    plain = not args.quick and (args.sizes is None or PLAIN[0] in sizes)
    todo = cases(sizes, args.quick, only, plain)
    load_before = os.getloadavg()
    env = {**os.environ, "OPENAI_API_KEY": "bench", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("OPENAI_BASE_URL", None)
    print(
        f"{len(todo)} cases x {max(1, args.rounds)} rounds; simulator latency {LATENCY} s; "
        f"load average {load_before[0]:.2f}"
    )
    started = time.perf_counter()
    sim = Simulator(LATENCY)
    plain = Simulator(LATENCY, "--limit-style", "proxy")  # no x-ratelimit-* headers
    servers = {"openai": sim, "plain": plain}
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="fanwise-bench-") as tmp:
        workdir = Path(tmp)
        try:
            startup = cli_startup(workdir, env)
            seeds = {t: seed_phase(sim, workdir, env, t) for t in ("aiohttp", "sdk")}
            for group in groups(todo):
                runs: dict[Case, list[Result]] = {case: [] for case in group}
                for _ in range(max(1, args.rounds)):
                    for case in group:
                        try:
                            runs[case].append(measure(case, servers[case.server], workdir, env))
                        except Failed as failure:
                            where = f"N = {case.n:,}, concurrency {case.concurrency:,}"
                            notes.append(f"{where}: {failure}")
                            print(notes[-1], flush=True)
                for case in group:
                    if runs[case]:
                        results.append(median(runs[case]))
                        header = len(results) == 1
                        print(text_table(results[-1:], results, header=header), flush=True)
        finally:
            sim.stop()
            plain.stop()
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    notes.append(
        f"fanwise batch on an empty file (the CLI rows' startup): {startup.wall:.2f} s wall, "
        f"{startup.cpu:.2f} s CPU, {startup.max_rss_mb:.0f} MB peak RSS."
    )
    targets = check_targets(results, seeds)
    print()
    for line in targets:
        print(line)
    for note in notes:
        print(note)
    print(
        f"took {elapsed:.0f} s; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    if args.no_write:
        return
    context = (
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average "
        f"{load_before[0]:.2f} before and {load_after[0]:.2f} after the {elapsed:.0f} s run; "
        f"simulator latency {LATENCY} s"
        + (f"; each row the median of {args.rounds} alternated rounds" if args.rounds > 1 else "")
    )
    section = render_markdown(results, targets, notes, context, args.plot.name)
    write_section(args.doc, section)
    try:
        render_plot(results, args.plot)
    except ImportError:
        print("no plot: matplotlib is not installed (pip install '.[bench]')")
    print(f"wrote {args.doc} and {args.plot}")


def groups(todo: list[Case]) -> list[list[Case]]:
    """The cases of one (N, concurrency, server), in order: each group's rounds alternate them."""
    keyed = itertools.groupby(todo, key=lambda case: (case.n, case.concurrency, case.server))
    return [list(group) for _, group in keyed]


def median(runs: list[Result]) -> Result:
    """One result from several runs of a case: the median wall and CPU, the fewest answers,
    the highest RSS and peak (a single run is itself)."""
    first = runs[0]
    return Result(
        first.case,
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        min(r.ok for r in runs),
        max(r.rss_mb for r in runs),
        max(r.served for r in runs),
        max(r.peak for r in runs),
        first.latency,
    )


START, END = "<!-- fanout:results -->", "<!-- /fanout:results -->"


def write_section(doc: Path, section: str) -> None:
    """Replace the text between the markers of ``doc`` (or create it with just the section)."""
    block = f"{START}\n{section.rstrip()}\n{END}"
    text = doc.read_text(encoding="utf-8") if doc.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, found, rest = text.partition(START)
    if not found:
        doc.write_text(f"{text.rstrip()}\n\n{block}\n", encoding="utf-8")
        return
    _, _, tail = rest.partition(END)
    doc.write_text(f"{head}{block}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
