"""Where a contender's time goes: pyinstrument samples, summed by the layer that spent them.

::

    python benchmarks/fanout_profile.py sdk-gather 3000 1000
    python benchmarks/fanout_profile.py fanwise-api 10000 1000
    python benchmarks/fanout_profile.py fanwise-cli 10000 1000

Starts the simulator (0.2 s latency) in its own process, runs one contender of
``fanout_contenders.py`` (or ``fanwise batch`` in this process, for ``fanwise-cli``) under
pyinstrument, and prints the sampled time of each layer: the openai SDK, pydantic, the httpx2
pool, aiohttp, fanwise's engine, its transport, its CLI and journal, the event loop, and the
time the loop sat idle. Sampling slows everything (about 1.5 to 3 times), so read the shares,
not the absolute figures; ``fanout.py`` measures those.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from fanout import LATENCY
from fanout_contenders import CONTENDERS, IMPORTS
from simulator_process import Simulator

LAYERS = [  # first match wins: (layer, pattern on the file path)
    ("idle (waiting for the network)", r"selectors\.py$"),
    (
        "fanwise engine (engine, settle, events, outcome, limits, retry)",
        r"/fanwise/(engine|settle|events|outcome|retry|limits/)",
    ),
    ("fanwise transport (models/)", r"/fanwise/models/"),
    ("fanwise CLI, batch, journal, prices", r"/fanwise/"),
    ("openai SDK (request building, parsing into models)", r"/openai/"),
    ("pydantic", r"/pydantic"),
    ("httpx2 / httpcore2 / anyio (the SDK's pool)", r"/(httpx2|httpcore2|anyio|h11|sniffio)/"),
    (
        "aiohttp / yarl / multidict",
        r"/(aiohttp|yarl|multidict|aiohappyeyeballs|propcache|frozenlist)/",
    ),
    ("LangChain", r"/(langchain|langsmith)"),
    ("json", r"/json/"),
    ("sqlite3", r"sqlite3"),
    ("asyncio (tasks, event loop)", r"/asyncio/"),
]


TOP = 20  # functions listed


def layer_of(path: str) -> str:
    for layer, pattern in LAYERS:
        if re.search(pattern, path):
            return layer
    return "other (stdlib, builtins)"


def self_times(
    frame: Any, into: Counter[str], functions: Counter[str], inherited: str = ""
) -> None:
    """Each frame's own time, to its layer and its function; ``[self]``, builtins and generated
    code (a dataclass ``__init__``) count for the code that called them."""
    path = frame.file_path or ""
    if not path or path.startswith("<"):
        path = inherited
    own = frame.time - sum(child.time for child in frame.children)
    into[layer_of(path)] += own
    if frame.is_synthetic:
        return
    where = "/".join(path.split("/")[-2:])
    functions[f"{frame.function} ({where})"] += own + sum(
        child.time for child in frame.children if child.is_synthetic
    )
    for child in frame.children:
        self_times(child, into, functions, path)


def run_cli(url: str, n: int, concurrency: int, workdir: Path) -> None:
    from fanwise.cli import cli

    source = workdir / "input.jsonl"
    with source.open("w", encoding="utf-8") as lines:
        for i in range(n):
            prompt = f"Question {i}: what should a visitor to Kyoto know?"
            lines.write(json.dumps({"prompt": prompt, "custom_id": f"q{i}"}) + "\n")
    args = ["batch", str(source), "--out", str(workdir / "out.jsonl"), "--quiet"]
    args += ["--provider", "openai", "--base-url", url, "--concurrency", str(concurrency)]
    try:
        cli.main(args, prog_name="fanwise", standalone_mode=False)
    except SystemExit as exit:
        if exit.code:
            raise


def main() -> None:
    import os

    from pyinstrument import Profiler

    name, n, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.environ["OPENAI_API_KEY"] = "bench"
    sim = Simulator(LATENCY)
    for module in IMPORTS.get(name, ["fanwise.cli"]):
        __import__(module)
    profiler = Profiler(interval=0.001, async_mode="disabled")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["FANWISE_HOME"] = tmp
            profiler.start()
            if name == "fanwise-cli":
                run_cli(sim.base_url, n, concurrency, Path(tmp))
            else:
                asyncio.run(CONTENDERS[name](sim.base_url, n, concurrency))
            profiler.stop()
    finally:
        sim.stop()
    session = profiler.last_session
    assert session is not None
    layers: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    self_times(session.root_frame(trim_stem=False), layers, functions)
    busy = sum(t for layer, t in layers.items() if not layer.startswith("idle"))
    print(f"{name}, N = {n:,}, concurrency {concurrency:,}: {session.duration:.2f} s sampled")
    print(f"{'layer':<66} {'s':>7} {'% busy':>7} {'µs/call':>8}")
    for layer, seconds in layers.most_common():
        share = "" if layer.startswith("idle") else f"{seconds / busy * 100:6.1f}%"
        print(f"{layer:<66} {seconds:7.2f} {share:>7} {seconds / n * 1e6:8.0f}")
    print(f"\n{'functions with the most own time':<66} {'s':>7} {'':>7} {'µs/call':>8}")
    for function, seconds in functions.most_common(TOP):
        print(f"{function[:66]:<66} {seconds:7.2f} {'':>7} {seconds / n * 1e6:8.0f}")


if __name__ == "__main__":
    main()
