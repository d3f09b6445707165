"""``--engine auto --deadline`` against the simulator's batch clock: the four must-hold cases.

Each case runs ``fanwise batch`` as its own process (as a user does) on 100 lines against a
fresh ``fanwise simulate`` process, and reads the result from the journal and the simulator's
``/_stats``: lines by path, lines answered twice (a prompt the simulator ran more than once: a
batch line and a live call), the cost, all-live's cost, and whether the deadline was met. ::

    python benchmarks/deadline_engine.py          # about two minutes

1. a batch well within the deadline: every line at batch price;
2. a batch that stalls at 40 %: the 40 % kept at batch price, the rest live, the deadline met,
   no line twice, the cost at most (0.4 x 0.5 + 0.6 x 1.0) of all-live + 2 % (all-live: the
   same 100 lines run with ``--engine live`` against the same simulator);
3. a deadline too short even for all-live: said before any request, with what would be done by
   then; the run ends at the deadline with what arrived;
4. case 2 killed with SIGKILL mid-run (its batch made, before the switch) and resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from simulator_process import Simulator

from fanwise.journal import Journal

LINES = 100
BOUND = 0.4 * 0.5 + 0.6 * 1.0


@dataclass
class Case:
    name: str
    batch: int
    live: int
    twice: int
    cost: float
    all_live: float
    met: bool
    wall: float
    note: str = ""


def write_input(folder: Path) -> Path:
    path = folder / "in.jsonl"
    lines = (json.dumps({"prompt": f"question {i}", "custom_id": f"r{i}"}) for i in range(LINES))
    path.write_text("\n".join(lines) + "\n")
    return path


def fanwise(folder: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "FANWISE_HOME": str(folder / "home")}
    command = [sys.executable, "-m", "fanwise", *args, "--journal", str(folder / "j.db")]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def auto_batch(folder: Path, url: str, deadline: str, *flags: str) -> subprocess.Popen[str]:
    source = write_input(folder)
    return fanwise(
        folder, "batch", str(source), "--engine", "auto", "--deadline", deadline,
        "--base-url", url, "-o", str(folder / "out.jsonl"), "--plain", *flags,
    )  # fmt: skip


def finished(folder: Path) -> tuple[dict[str, Any], float]:
    """The last run's ``auto`` summary and its whole cost."""
    with Journal.open(folder / "j.db") as journal:
        run = journal.runs(1)[0]
    return dict(run.summary.get("auto", {})), float(run.summary.get("cost_usd", 0.0))


def twice(sim: Simulator) -> int:
    """Prompts the simulator ran more than once (a batch line and a live call)."""
    return sum(count > 1 for count in sim.stats()["attempts"].values())


def case(name: str, folder: Path, sim: Simulator, started: float, note: str = "") -> Case:
    auto, cost = finished(folder)
    lines = auto.get("lines", {})
    return Case(
        name,
        int(lines.get("batch", 0)),
        int(lines.get("live", 0)),
        twice(sim),
        cost,
        float(auto.get("all_live_usd", 0.0)),
        bool(auto.get("deadline_met")),
        time.monotonic() - started,
        note,
    )


def in_time(folder: Path) -> Case:
    sim = Simulator(0.25, "--batch-speed", "100", "--batch-duration", "200",
                    "--batch-finalize", "20")  # fmt: skip
    try:
        started = time.monotonic()
        process = auto_batch(folder, sim.base_url, "60s", "-c", "4", "--live-latency", "0.25")
        process.communicate(timeout=120)
        return case("batch well within the deadline (60 s)", folder, sim, started)
    finally:
        sim.stop()


STALL = ("--batch-speed", "20", "--batch-duration", "100", "--batch-finalize", "10",
         "--batch-stall-at", "0.4")  # fmt: skip


def all_live_cost(folder: Path) -> float:
    sim = Simulator(0.25)
    try:
        source = write_input(folder)
        process = fanwise(folder, "batch", str(source), "--base-url", sim.base_url, "-c", "4")
        process.communicate(timeout=120)
        return finished(folder)[1]
    finally:
        sim.stop()


def stalled(folder: Path, live_cost: float) -> Case:
    sim = Simulator(0.25, *STALL)
    try:
        started = time.monotonic()
        process = auto_batch(folder, sim.base_url, "30s", "-c", "4", "--live-latency", "0.25")
        process.communicate(timeout=120)
        found = case("batch stalls at 40 % (30 s)", folder, sim, started)
    finally:
        sim.stop()
    found.all_live = live_cost
    return found


def too_short(folder: Path) -> Case:
    sim = Simulator(0.5)
    try:
        started = time.monotonic()
        process = auto_batch(folder, sim.base_url, "8s", "-c", "2", "--live-latency", "0.5")
        _, err = process.communicate(timeout=120)
        said = next((line for line in err.splitlines() if "too short" in line), "")
        first_call = next((n for n, line in enumerate(err.splitlines()) if "Asking" in line), -1)
        said_first = 0 <= err.splitlines().index(said) < first_call if said else False
        done = case("deadline too short for all-live (8 s)", folder, sim, started)
        done.note = f"said before the first call: {said_first}: {said.removeprefix('fanwise: ')}"
        return done
    finally:
        sim.stop()


def killed_and_resumed(folder: Path, live_cost: float) -> Case:
    sim = Simulator(0.25, *STALL)
    try:
        started = time.monotonic()
        process = auto_batch(folder, sim.base_url, "30s", "-c", "4", "--live-latency", "0.25")
        time.sleep(10)  # the batch is made and stalled at 40 %; the switch is ~10 s away
        process.send_signal(signal.SIGKILL)
        process.wait()
        with Journal.open(folder / "j.db") as journal:
            run_id = journal.runs(1)[0].id
        resumed = fanwise(folder, "resume", str(run_id), "--plain")
        resumed.communicate(timeout=120)
        found = case("killed -9 at 10 s, resumed (30 s)", folder, sim, started)
    finally:
        sim.stop()
    found.all_live = live_cost
    return found


def main() -> None:
    rows: list[Case] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for name in ("a", "b", "c", "d", "e"):
            (base / name).mkdir()
        live_cost = all_live_cost(base / "e")
        rows.append(in_time(base / "a"))
        rows.append(stalled(base / "b", live_cost))
        rows.append(too_short(base / "c"))
        rows.append(killed_and_resumed(base / "d", live_cost))
    print(f"{LINES} lines each; all-live (--engine live, -c 4) cost ${live_cost:.6f}\n")
    print("| case | batch | live | twice | cost $ | of all-live | deadline met | wall s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for row in rows:
        share = row.cost / row.all_live if row.all_live else 0.0
        print(
            f"| {row.name} | {row.batch} | {row.live} | {row.twice} | {row.cost:.6f} | "
            f"{share:.3f} | {'yes' if row.met else 'no'} | {row.wall:.1f} |"
        )
    for row in rows:
        if row.note:
            print(f"\n{row.name}: {row.note}")
    print(f"\nbound for the stalled cases: {BOUND:.2f} of all-live + 0.02")


if __name__ == "__main__":
    main()
