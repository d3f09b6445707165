"""How many requests a second the simulator serves, measured from a separate process.

Starts ``python -m fanwise.simulator --port 0`` (or uses ``--url``), then drives it from this
process with an aiohttp client (or, with ``--client openai``, through the openai SDK, to see what
a real fanwise client can ask for) and prints one line of results. Examples::

    python benchmarks/simulator_rps.py --requests 20000 --concurrency 100
    python benchmarks/simulator_rps.py --requests 10000 --concurrency 1000 --latency 0.2
    python benchmarks/simulator_rps.py --client openai --requests 5000 --concurrency 100
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import aiohttp
from openai import AsyncOpenAI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", "-n", type=int, default=10_000)
    parser.add_argument("--concurrency", "-c", type=int, default=100)
    parser.add_argument("--latency", default="0", help="simulator --latency spec")
    parser.add_argument("--api", choices=("responses", "chat"), default="responses")
    parser.add_argument("--stream", action="store_true", help="ask for SSE streams")
    parser.add_argument("--client", choices=("aiohttp", "openai"), default="aiohttp")
    parser.add_argument("--url", help="an already running simulator's /v1 URL")
    args = parser.parse_args()
    process = None
    url = args.url
    if url is None:
        process, url = _start_simulator(args.latency)
    try:
        print(asyncio.run(_measure(url, args)), flush=True)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)


def _start_simulator(latency: str) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "fanwise.simulator", "--port", "0", "--latency", latency]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("fanwise simulator listening on "):
        process.kill()
        raise SystemExit(f"the simulator did not start: {line!r}")
    return process, line.split()[-1]


async def _measure(url: str, args: argparse.Namespace) -> str:
    statuses: Counter[str] = Counter()
    timings: list[float] = []
    gate = asyncio.Semaphore(args.concurrency)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        AsyncOpenAI(api_key="bench", base_url=url, max_retries=0) as sdk,
    ):
        call = _sdk_call(sdk, args) if args.client == "openai" else _http_call(http, url, args)

        async def one(n: int) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    statuses[str(await call(n))] += 1
                except Exception as exc:
                    statuses[type(exc).__name__] += 1
                timings.append(time.perf_counter() - started)

        await asyncio.gather(*(one(-n) for n in range(1, min(args.concurrency, 500) + 1)))
        async with http.post(f"{url.removesuffix('/v1')}/_control/reset") as response:
            response.raise_for_status()
        statuses.clear()
        timings.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(args.requests)))
        elapsed = time.perf_counter() - started
        async with http.get(f"{url.removesuffix('/v1')}/_stats") as response:
            stats = await response.json()
    cuts = statistics.quantiles(timings, n=100)
    return (
        f"client={args.client} api={args.api} stream={args.stream} latency={args.latency} "
        f"requests={args.requests} concurrency={args.concurrency}: "
        f"{args.requests / elapsed:,.0f} req/s in {elapsed:.2f}s, "
        f"p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, "
        f"results {dict(statuses)}, server peak in-flight {stats['peak_in_flight']}"
    )


def _payload(args: argparse.Namespace, n: int) -> dict[str, Any]:
    prompt = f"benchmark question {n}: what should a visitor know?"
    if args.api == "chat":
        body: dict[str, Any] = {"model": "gpt-5", "messages": [{"role": "user", "content": prompt}]}
    else:
        body = {"model": "gpt-5", "input": prompt}
    if args.stream:
        body["stream"] = True
    return body


def _http_call(http: aiohttp.ClientSession, url: str, args: argparse.Namespace) -> Any:
    endpoint = f"{url}/responses" if args.api == "responses" else f"{url}/chat/completions"

    async def call(n: int) -> int:
        async with http.post(endpoint, json=_payload(args, n)) as response:
            await response.read()
            return response.status

    return call


def _sdk_call(sdk: AsyncOpenAI, args: argparse.Namespace) -> Any:
    async def call(n: int) -> int:
        body = _payload(args, n)
        if args.api == "chat":
            result: Any = await sdk.chat.completions.create(**body)
        else:
            result = await sdk.responses.create(**body)
        if args.stream:
            async for _ in result:
                pass
        return 200

    return call


if __name__ == "__main__":
    main()
