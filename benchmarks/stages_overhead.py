"""What the stage runner adds to the engine: a map of N calls against N calls run directly.

One command, ``python benchmarks/stages_overhead.py``, prints the best of three rounds of:

1. ``Engine.run`` of N prompt calls on a model that answers at once (the engine alone);
2. ``run_stages`` of a workflow whose first stage answers a list of N items and whose second
   maps one call over each (N + 1 calls: rendering, keys, policies, results);

and the stage runner's extra time per mapped call. No network, no journal.
"""

from __future__ import annotations

import asyncio
import json
import time

from fanwise import Call, Completion, Engine, Request
from fanwise.models.base import DeltaSink
from fanwise.stages import Stage, Workflow, run_stages

N = 2000
ROUNDS = 3
ITEMS = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}}}


class Instant:
    """Answers at once: the list of N items for the outline, a short text otherwise."""

    name = "instant"

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        if request.prompt.startswith("List"):
            return Completion(json.dumps({"items": [f"item {n}" for n in range(N)]}))
        return Completion("ok")

    async def aclose(self) -> None:
        return None


async def direct() -> float:
    engine = Engine(Instant(), concurrency=64)
    start = time.perf_counter()  # the calls are built inside the timing, as the runner does
    await engine.run([Call(Request.text(f"About item {n}, number {n}")) for n in range(N)])
    return time.perf_counter() - start


async def staged() -> float:
    workflow = Workflow(
        (
            Stage("outline", prompt="List the items.", schema=ITEMS),
            Stage("each", map="outline.items", prompt="About {item}, number {index}"),
        )
    )
    engine = Engine(Instant(), concurrency=64)
    start = time.perf_counter()
    result = await run_stages(workflow, engine)
    elapsed = time.perf_counter() - start
    assert result.stage("each").detail["width"] == N
    return elapsed


def main() -> None:
    plain = min(asyncio.run(direct()) for _ in range(ROUNDS))
    stages = min(asyncio.run(staged()) for _ in range(ROUNDS))
    print(f"engine alone, {N} calls:        {plain * 1000:8.1f} ms")
    print(f"run_stages, 1 + {N}-item map:  {stages * 1000:8.1f} ms")
    print(f"stage runner's extra per call: {(stages - plain) / N * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
