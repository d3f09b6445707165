"""CPU per call of the two Anthropic transports: fanwise's aiohttp client and the official SDK.

``python benchmarks/anthropic_transport.py [N] [CONCURRENCY]`` starts ``fanwise simulate`` (its
Messages API, no latency), then, each in a fresh process, sends N distinct Messages requests at
CONCURRENCY through fanwise's engine on ``AnthropicModel`` and on ``AnthropicSdkModel``, and
prints one Markdown row per transport: wall seconds, CPU seconds of the client process
(``getrusage``, so the simulator's CPU is not counted) and CPU milliseconds per call.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time


async def fan_out(transport: str, root: str, n: int, concurrency: int) -> dict[str, float]:
    from fanwise import Call, Engine, Request
    from fanwise.models.anthropic import AnthropicModel
    from fanwise.models.anthropic_sdk import AnthropicSdkModel
    from fanwise.models.base import Endpoint, Model

    model: Model = (
        AnthropicSdkModel(api_key="bench", base_url=root)
        if transport == "sdk"
        else AnthropicModel(api_key="bench", base_url=root)
    )
    calls = [
        Call(
            Request.text(
                f"Question {i} about Kyoto", "claude-haiku-4-5", endpoint=Endpoint.MESSAGES
            )
        )
        for i in range(n)
    ]
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    async with model:
        outcomes = await Engine(model, concurrency=concurrency).run(calls)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    ok = sum(o.status == "fulfilled" for o in outcomes)
    return {"wall": wall, "cpu": used, "ok": ok}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        _, _, transport, root, n, concurrency = sys.argv
        print(json.dumps(asyncio.run(fan_out(transport, root, int(n), int(concurrency)))))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    sim = subprocess.Popen(
        [sys.executable, "-m", "fanwise", "simulate", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        root = sim.stdout.readline().split()[-1].removesuffix("/v1")
        print(f"N = {n:,}, concurrency {concurrency}\n")
        print("| transport | wall s | CPU s | CPU ms / call | answered |")
        print("| --- | --- | --- | --- | --- |")
        for transport in ("aiohttp", "sdk"):
            args = ["--one", transport, root, str(n), str(concurrency)]
            done = subprocess.run(
                [sys.executable, __file__, *args], capture_output=True, text=True, check=True
            )
            r = json.loads(done.stdout)
            per_call = r["cpu"] / n * 1000
            print(
                f"| {transport} | {r['wall']:.2f} | {r['cpu']:.2f} | {per_call:.2f} "
                f"| {int(r['ok']):,}/{n:,} |"
            )
    finally:
        sim.terminate()
        sim.wait(timeout=10)


if __name__ == "__main__":
    main()
