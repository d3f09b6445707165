"""fanwise against a rate limit it is not told: how close to the ideal, and how many 429s.

Each scenario starts ``python -m fanwise.simulator`` with a limit (``--rpm 600`` by default) in a
separate process and runs 300 calls through the real OpenAI model and the engine, with no
client-side limit: only the adaptive limiter (``x-ratelimit-*`` header pacing + AIMD), or, to
compare, a weaker variant. ::

    python benchmarks/rate_limit.py                           # every scenario, ~2.5 minutes
    python benchmarks/rate_limit.py --scenario drained-adaptive

The ideal: a server bucket holds ``B`` units and refills at ``limit / 60`` a second, so calls
that spend ``S`` units cannot finish before ``max(0, S - B) / (limit / 60)`` seconds, plus one
call's latency for the last answer; the slowest unit (requests or tokens) decides. For 300 calls
at 600 rpm that is (300 - B) / 10 s. The simulator's bucket holds a whole minute (B = 600 at
600 rpm), which 300 calls never exhaust, so the telling scenarios first drain it: B is then what
refilled meanwhile, read from ``GET /v1/models`` (which spends nothing) just before the run.
When B covers everything, the ideal is what the client's concurrency allows:
``ceil(N / concurrency)`` latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from fanwise import Call, Engine, Fulfilled, Request, RetryPolicy
from fanwise.limits import AdaptiveConcurrency, Limiter, Limits, Unlimited, build_limiter
from fanwise.models.openai import OpenAIModel

LATENCY = 0.2  # seconds the simulator takes per answer (fixed, so the ideal is exact)
UNITS = ("requests", "tokens")


def adaptive() -> Limiter:
    return build_limiter(adaptive=True)


def aimd_only() -> Limiter:
    return Limits(AdaptiveConcurrency())


@dataclass(frozen=True)
class Scenario:
    name: str
    server: tuple[str, ...]
    drained: bool
    limiter: Callable[[], Limiter]
    note: str


RPM = ("--rpm", "600")
TPM = ("--tpm", "60000")
SCENARIOS = [
    Scenario("fresh-unlimited", RPM, False, Unlimited, "600 rpm, full bucket, no limiter"),
    Scenario("fresh-adaptive", RPM, False, adaptive, "600 rpm, full bucket"),
    Scenario("drained-adaptive", RPM, True, adaptive, "600 rpm: the issue's target"),
    Scenario("drained-aimd-only", RPM, True, aimd_only, "600 rpm, headers ignored"),
    Scenario("drained-unlimited", RPM, True, Unlimited, "600 rpm, no limiter: retries only"),
    Scenario("drained-tpm-adaptive", TPM, True, adaptive, "60k tpm, tokens are the limit"),
]


@dataclass(frozen=True)
class Result:
    scenario: Scenario
    wall: float
    ideal: float
    fulfilled: int
    requests: int
    refused: int
    max_attempts: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", "-n", type=int, default=300)
    parser.add_argument("--concurrency", "-c", type=int, default=32)
    parser.add_argument("--scenario", choices=[s.name for s in SCENARIOS], action="append")
    args = parser.parse_args()
    print(
        f"{args.calls} calls per scenario, simulator --latency {LATENCY} in its own process, "
        f"client --concurrency {args.concurrency}, no client-side limit"
    )
    print(
        f"{'scenario':<21} {'ideal s':>8} {'wall s':>8} {'wall/ideal':>10} {'fulfilled':>9} "
        f"{'requests':>8} {'429s':>5} {'429 %':>6} {'max att':>7}  note"
    )
    for scenario in SCENARIOS:
        if not args.scenario or scenario.name in args.scenario:
            print_row(run(scenario, args), args.calls)


def run(scenario: Scenario, args: argparse.Namespace) -> Result:
    command = [sys.executable, "-m", "fanwise.simulator", "--port", "0", "--latency", str(LATENCY)]
    process = subprocess.Popen(
        [*command, *scenario.server], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("fanwise simulator listening on "):
            raise SystemExit(f"the simulator did not start: {line!r}")
        return asyncio.run(measure(line.split()[-1], scenario, args))
    finally:
        process.terminate()
        process.wait(timeout=10)


async def measure(url: str, scenario: Scenario, args: argparse.Namespace) -> Result:
    async with aiohttp.ClientSession() as http:
        if scenario.drained:
            await drain(http, url)
        quotas, before = await server_view(http, url)
        model = OpenAIModel(api_key="bench", base_url=url)
        engine = Engine(
            model,
            concurrency=args.concurrency,
            limiter=scenario.limiter(),
            retry=RetryPolicy(retries=20),
            timeout=30,
        )
        calls = [Call(Request.text(f"Question {i} about Kyoto")) for i in range(args.calls)]
        started = time.perf_counter()
        outcomes = await engine.run(calls)
        wall = time.perf_counter() - started
        await model.aclose()
        _, after = await server_view(http, url)
    spent = {
        "requests": after["by_status"].get("200", 0) - before["by_status"].get("200", 0),
        "tokens": sum(after[k] - before[k] for k in ("input_tokens", "output_tokens")),
    }
    fulfilled = sum(isinstance(o, Fulfilled) for o in outcomes)
    # What all the calls would have spent, had every one been fulfilled.
    needed = {u: spent[u] * args.calls / max(1, fulfilled) for u in UNITS}
    paced = [(needed[u] - quotas[u][1]) / (quotas[u][0] / 60) for u in UNITS]
    waves = math.ceil(args.calls / args.concurrency) * LATENCY
    ideal = max(*paced) + LATENCY if max(paced) > 0 else waves
    return Result(
        scenario,
        wall,
        ideal,
        fulfilled=fulfilled,
        requests=after["requests"] - before["requests"],
        refused=after["by_status"].get("429", 0) - before["by_status"].get("429", 0),
        max_attempts=max(len(o.attempts) for o in outcomes),
    )


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> int:
    async with http.post(url, json=body) as response:
        await response.read()
        return response.status


async def drain(http: aiohttp.ClientSession, url: str) -> None:
    """Spend the server's buckets: ask as fast as possible until it says 429."""
    body = {"model": "gpt-5", "input": "drain"}
    while 429 not in await asyncio.gather(
        *(post(http, f"{url}/responses", body) for _ in range(50))
    ):
        pass


async def server_view(
    http: aiohttp.ClientSession, url: str
) -> tuple[dict[str, tuple[int, int]], dict[str, Any]]:
    """Each bucket's (limit, remaining), spending nothing, and the server's statistics."""
    async with http.get(f"{url}/models") as response:
        headers = response.headers
        quotas = {
            unit: (
                int(headers[f"x-ratelimit-limit-{unit}"]),
                int(headers[f"x-ratelimit-remaining-{unit}"]),
            )
            for unit in UNITS
        }
    async with http.get(f"{url.removesuffix('/v1')}/_stats") as response:
        stats = await response.json()
    return quotas, stats


def print_row(r: Result, calls: int) -> None:
    share = r.refused / r.requests if r.requests else 0.0
    print(
        f"{r.scenario.name:<21} {r.ideal:>8.2f} {r.wall:>8.2f} {r.wall / r.ideal:>10.2f} "
        f"{r.fulfilled:>5}/{calls:<3} {r.requests:>8} {r.refused:>5} {share:>6.1%} "
        f"{r.max_attempts:>7}  {r.scenario.note}",
        flush=True,
    )


if __name__ == "__main__":
    main()
