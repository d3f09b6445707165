"""Where a whole `fanwise batch --engine ray` process spends its time besides the calls.

Runs ``fanwise batch IN.jsonl --engine ray --base-url SIM -o OUT --quiet`` (a few lines, default
flags otherwise) as its own process, as a user does, against ``fanwise simulate`` with no limits,
and watches it from outside: the start-up (launch to the first request the server sees: the
CLI, ``ray.init`` and the run's actors), the run (to the last line written) and the teardown
(to the process's exit: Ray stopping). Several rounds, for a loaded machine is noisy; with
``--before SRC`` (another fanwise's ``src`` folder, e.g. ``main``'s from ``git archive``) the
rounds alternate between that code and this, so both see the same load. ::

    python benchmarks/ray_startup.py               # 5 rounds of 4 calls, ~1 min
    python benchmarks/ray_startup.py -r 3 -n 100 -- --workers 1
    mkdir /tmp/main && git archive main src | tar -x -C /tmp/main
    python benchmarks/ray_startup.py -r 6 --before /tmp/main/src
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

PHASES = ("start-up", "run", "teardown", "total")


async def requests_seen(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url.removesuffix('/v1')}/_stats") as response:
        return sum((await response.json())["attempts"].values())


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def poll(done: Callable[[], Awaitable[bool]], process: asyncio.subprocess.Process) -> float:
    """Look every 10 ms until ``done`` (or the process has ended); the time then."""
    while process.returncode is None:
        if await done():
            break
        await asyncio.sleep(0.01)
    return time.perf_counter()


async def one_round(
    url: str, args: list[str], out: Path, calls: int, env: dict[str, str]
) -> tuple[float, ...]:
    """Launch the command; the seconds of its start-up, run and teardown, and in all."""
    async with aiohttp.ClientSession() as http:
        before = await requests_seen(http, url)

        async def called() -> bool:
            return await requests_seen(http, url) > before

        async def written() -> bool:
            return lines(out) >= calls

        launched = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fanwise", *args, stderr=asyncio.subprocess.DEVNULL, env=env
        )
        first = await poll(called, process)
        last = await poll(written, process)
        if await process.wait():
            raise SystemExit(f"fanwise exited {process.returncode}: {' '.join(args)}")
        ended = time.perf_counter()
    return first - launched, last - first, ended - last, ended - launched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--rounds", type=int, default=5)
    parser.add_argument("-n", "--calls", type=int, default=4)
    parser.add_argument("--before", metavar="SRC", help="also run this fanwise source, in turns")
    parser.add_argument("flags", nargs="*", help="more flags for fanwise batch (after --)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fanwise-ray-startup-"))
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    os.environ["FANWISE_HOME"] = str(folder / "home")
    source, out = folder / "in.jsonl", folder / "out.jsonl"
    source.write_text("".join(f'{{"prompt": "q{i}"}}\n' for i in range(args.calls)))
    command = [sys.executable, "-m", "fanwise.simulator", "--port", "0", "--latency", "0.05"]
    simulator = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    codes = {"this": dict(os.environ)}
    if args.before:
        codes = {"before": {**os.environ, "PYTHONPATH": args.before}, **codes}
    rounds: dict[str, list[tuple[float, ...]]] = {code: [] for code in codes}
    try:
        assert simulator.stdout is not None
        url = simulator.stdout.readline().decode().split()[-1]
        flags = ["--engine", "ray", "--base-url", url, "-o", str(out), "--quiet", *args.flags]
        print(f"fanwise batch ({args.calls} lines) {' '.join(flags[:2] + args.flags)}")
        print(f"{'code':>6} {'round':>5} " + " ".join(f"{phase:>9}" for phase in PHASES))
        for number in range(1, args.rounds + 1):
            turn = list(codes.items())
            for code, env in turn if number % 2 else reversed(turn):
                out.unlink(missing_ok=True)
                batch = ["batch", str(source), *flags]
                seconds = asyncio.run(one_round(url, batch, out, args.calls, env))
                rounds[code].append(seconds)
                line = " ".join(f"{s:>9.2f}" for s in seconds)
                print(f"{code:>6} {number:>5} {line}  load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    for code, seconds in rounds.items():
        medians = [statistics.median(column) for column in zip(*seconds, strict=True)]
        print(f"{code:>6} {'median':>5} " + " ".join(f"{s:>9.2f}" for s in medians))
    print(f"load average {' '.join(f'{n:.2f}' for n in os.getloadavg())}")


if __name__ == "__main__":
    main()
