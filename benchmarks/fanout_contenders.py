"""The contenders of ``benchmarks/fanout.py``: one fan-out each, run in a process of its own.

``python benchmarks/fanout_contenders.py NAME URL N CONCURRENCY`` imports what NAME needs, then
times N calls to the simulator at URL and prints one JSON line: wall seconds, CPU seconds of
this process during the fan-out (``getrusage``, so the simulator's CPU is never counted) and how
many calls came back with text. Every contender asks the same thing: model ``gpt-5``, a distinct
prompt per call, reasoning effort ``minimal``, through the Responses API.

The fanwise CLI contender is not here: it is the ``fanwise batch`` process itself, started by
``fanout.py``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

MODEL = "gpt-5"
EFFORT = "minimal"
KEY = "bench"  # the simulator takes any key


def prompts(n: int) -> Iterator[str]:
    """Distinct prompts, so no layer can answer one call from another's result."""
    return (f"Question {i}: what should a visitor to Kyoto know?" for i in range(n))


async def sdk_sequential(url: str, n: int, concurrency: int) -> int:
    """The openai SDK in a plain loop: one call at a time (what the seed did before fan-out)."""
    from openai import AsyncOpenAI

    ok = 0
    async with AsyncOpenAI(api_key=KEY, base_url=url) as client:
        for prompt in prompts(n):
            response = await client.responses.create(
                model=MODEL, input=prompt, reasoning={"effort": EFFORT}
            )
            ok += bool(response.output_text)
    return ok


async def sdk_gather(url: str, n: int, concurrency: int) -> int:
    """The usual idiom: ``asyncio.gather`` over every call, a semaphore for the concurrency."""
    from openai import AsyncOpenAI

    gate = asyncio.Semaphore(concurrency)
    async with AsyncOpenAI(api_key=KEY, base_url=url) as client:

        async def one(prompt: str) -> bool:
            async with gate:
                response = await client.responses.create(
                    model=MODEL, input=prompt, reasoning={"effort": EFFORT}
                )
                return bool(response.output_text)

        results = await asyncio.gather(*(one(p) for p in prompts(n)), return_exceptions=True)
    return sum(r is True for r in results)


async def langchain_abatch(url: str, n: int, concurrency: int) -> int:
    """LangChain's ``ChatOpenAI.abatch`` with ``max_concurrency`` (Responses API)."""
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=MODEL,
        api_key=KEY,  # type: ignore[arg-type]  # a SecretStr is also accepted
        base_url=url,
        use_responses_api=True,
        reasoning_effort=EFFORT,
    )
    answers = await llm.abatch(
        list(prompts(n)), config={"max_concurrency": concurrency}, return_exceptions=True
    )
    return sum(bool(getattr(a, "text", None)) for a in answers)


async def aiohttp_floor(url: str, n: int, concurrency: int) -> int:
    """The floor: aiohttp posts the JSON body and ``json.loads`` the answer's text, nothing else.

    ``concurrency`` workers pull from one iterator: no task, future or semaphore per call.
    """
    import aiohttp

    endpoint = f"{url}/responses"
    todo = prompts(n)
    ok = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal ok
            for prompt in todo:
                body = {"model": MODEL, "input": prompt, "reasoning": {"effort": EFFORT}}
                async with http.post(endpoint, json=body) as response:
                    data = json.loads(await response.read())
                ok += bool(data["output"][-1]["content"][0]["text"])

        await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return ok


async def fanwise_api(url: str, n: int, concurrency: int) -> int:
    """fanwise's Python API: ``Engine.run`` with the aiohttp transport, outcomes not kept."""
    from fanwise.models.fast import FastOpenAIModel

    return await _engine(FastOpenAIModel(api_key=KEY, base_url=url), n, concurrency)


async def fanwise_api_sdk(url: str, n: int, concurrency: int) -> int:
    """The same engine on the official SDK (``--transport sdk``)."""
    from fanwise.models.openai import OpenAIModel

    return await _engine(OpenAIModel(api_key=KEY, base_url=url), n, concurrency)


async def _engine(model: Any, n: int, concurrency: int) -> int:
    from fanwise import Call, Engine, Fulfilled, Request

    ok = 0

    def count(index: int, call: Call, outcome: Any) -> None:
        nonlocal ok
        ok += isinstance(outcome, Fulfilled) and bool(outcome.value.text)

    engine = Engine(model, concurrency=concurrency)
    calls = (Call(Request.text(p, model=MODEL, reasoning_effort=EFFORT)) for p in prompts(n))
    try:
        await engine.run(calls, keep=False, on_outcome=count)
    finally:
        await model.aclose()
    return ok


CONTENDERS: dict[str, Callable[[str, int, int], Awaitable[int]]] = {
    "sdk-sequential": sdk_sequential,
    "sdk-gather": sdk_gather,
    "langchain-abatch": langchain_abatch,
    "aiohttp-floor": aiohttp_floor,
    "fanwise-api": fanwise_api,
    "fanwise-api-sdk": fanwise_api_sdk,
}
IMPORTS = {
    "sdk-sequential": ["openai"],
    "sdk-gather": ["openai"],
    "langchain-abatch": ["langchain_openai"],
    "aiohttp-floor": ["aiohttp"],
    # fanwise.engine too: the lazy package imports it at first use (27 ms, once), which would
    # land inside the timed fan-out and count 9 ms a call at N = 3.
    "fanwise-api": ["fanwise", "fanwise.engine", "fanwise.models.fast"],
    "fanwise-api-sdk": ["fanwise", "fanwise.engine", "fanwise.models.openai"],
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(name: str, url: str, n: int, concurrency: int) -> dict[str, Any]:
    """Import first (a one-off cost, not the fan-out's), then time the fan-out alone."""
    for module in IMPORTS[name]:
        __import__(module)
    started, cpu = time.perf_counter(), cpu_seconds()
    ok = asyncio.run(CONTENDERS[name](url, n, concurrency))
    return {"wall": time.perf_counter() - started, "cpu": cpu_seconds() - cpu, "ok": ok}


def main() -> None:
    name, url, n, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(measure(name, url, n, concurrency)), flush=True)


if __name__ == "__main__":
    main()
