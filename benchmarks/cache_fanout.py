"""Cache-aware fan-out against a naive one: 20 questions over a 20,000-token context.

Both run the same research calls through the same engine against the simulator in its own
process, whose prompt cache follows the providers' rules (docs/simulator.md): an entry exists
once a response to it has begun. Side by side, in one run, for OpenAI and for Anthropic:

- **naive**: every call at once, no cache hints (what a hand-written ``asyncio.gather`` does);
- **fanwise**: the context laid out once before each question, the provider told (OpenAI's
  ``prompt_cache_key``, Anthropic's ``cache_control``), one call first and the rest once its
  answer begins.

Must hold (issue #26): at least 90 % of the cacheable input tokens of calls 2–20 read from the
cache; input cost at most 0.25x the naive fan-out's; research wall time at most the naive's
plus one call's time to first token plus 10 %. ::

    python benchmarks/cache_fanout.py               # ~30 s
    python benchmarks/cache_fanout.py --rounds 3    # medians of 3 alternated rounds
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

from simulator_process import Simulator

from fanwise import Call, Engine, Fulfilled, get_model
from fanwise.context import Material, tokens
from fanwise.models.base import Endpoint, Usage
from fanwise.models.settings import ModelSettings
from fanwise.prices import builtin_prices
from fanwise.workflow import Plan

QUESTIONS = 20
CONTEXT_TOKENS = 20_000
LATENCY = 1.0  # seconds to the first token (and, in the simulator, to the whole answer)
PROVIDERS = {"openai": "gpt-5", "anthropic": "claude-sonnet-4-5"}


def the_plan() -> Plan:
    sentence = "Section {n}: the supplier delivers the goods described in schedule {n}. "
    text = ""
    n = 0
    while tokens(text) < CONTEXT_TOKENS:
        n += 1
        text += sentence.format(n=n)
    questions = [f"Question {q}: what does section {q * 7} require?" for q in range(QUESTIONS)]
    return Plan("the supply contract", questions, context=(Material("contract.md", text),))


def naive_calls(plan: Plan, settings: ModelSettings) -> list[Call]:
    """The same layout, by hand, with no hint: what a user writing the loop would send."""
    context = plan.context_block
    return [Call(settings.request(q, context)) for q in plan.texts]


@dataclass(frozen=True)
class Measured:
    wall: float
    read_share: float  # of the cacheable input tokens of calls 2..N
    input_cost: float
    first_latency: float


async def measure(provider: str, sim: Simulator, warm: bool) -> Measured:
    model_name = PROVIDERS[provider]
    endpoint = Endpoint.MESSAGES if provider == "anthropic" else Endpoint.RESPONSES
    settings = ModelSettings(model=model_name, reasoning_effort=None, endpoint=endpoint)
    plan = the_plan()
    calls = plan.research_calls(settings) if warm else naive_calls(plan, settings)
    environ = {"ANTHROPIC_API_KEY": "sk-bench", "OPENAI_API_KEY": "sk-bench"}
    base = sim.base_url if provider == "openai" else sim.root
    sim.reset()
    async with get_model(provider, base_url=base, environ=environ) as model:
        engine = Engine(model, concurrency=QUESTIONS, retry=None)
        started = time.perf_counter()
        outcomes = await engine.run(calls, warm=warm)
        wall = time.perf_counter() - started
    usages = [o.value.usage if isinstance(o, Fulfilled) else Usage() for o in outcomes]
    if not all(isinstance(o, Fulfilled) for o in outcomes):
        raise SystemExit(f"{provider}: some calls failed: {outcomes}")
    cacheable = tokens(plan.context_block or "") * (len(calls) - 1)
    read = sum(u.cached_tokens for u in usages[1:])
    price = builtin_prices().price(model_name)
    assert price is not None
    cost = sum(price.cost(Usage(u.input_tokens, 0, 0, u.cached_tokens, u.cache_write_tokens))
               for u in usages)  # fmt: skip
    return Measured(wall, read / cacheable, cost, outcomes[0].latency)


def median(values: list[Measured]) -> Measured:
    return Measured(
        statistics.median(v.wall for v in values),
        statistics.median(v.read_share for v in values),
        statistics.median(v.input_cost for v in values),
        statistics.median(v.first_latency for v in values),
    )


async def main(rounds: int) -> int:
    sim = Simulator(LATENCY)
    failed = 0
    try:
        rows: list[tuple[str, Measured, Measured]] = []
        for provider in PROVIDERS:
            runs: dict[bool, list[Measured]] = {True: [], False: []}
            for _ in range(rounds):  # alternated, so both see the same machine
                for warm in (False, True):
                    runs[warm].append(await measure(provider, sim, warm))
            rows.append((provider, median(runs[False]), median(runs[True])))
    finally:
        sim.stop()
    print(f"{QUESTIONS} questions over a {CONTEXT_TOKENS:,}-token context, simulator latency "
          f"{LATENCY:g} s, medians of {rounds} round(s)")  # fmt: skip
    header = ("provider", "fan-out", "read from cache (calls 2-20)", "input cost", "vs naive",
              "research wall", "bound", "met")  # fmt: skip
    print(" | ".join(header))
    for provider, naive, smart in rows:
        ratio = smart.input_cost / naive.input_cost
        bound = naive.wall + smart.first_latency + 0.1 * naive.wall
        met = smart.read_share >= 0.9 and ratio <= 0.25 and smart.wall <= bound
        failed += not met
        for name, m in (("naive", naive), ("fanwise", smart)):
            cells: list[Any] = [provider, name, f"{m.read_share:.1%}", f"${m.input_cost:.4f}"]
            cells += [f"{m.input_cost / naive.input_cost:.2f}x", f"{m.wall:.2f} s"]
            cells += [f"{bound:.2f} s", ("yes" if met else "NO") if m is smart else ""]
            print(" | ".join(map(str, cells)))
    return failed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="alternated rounds (medians)")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.rounds)))
