"""Cache-aware fan-out: shared context laid out for the prompt cache, warm-then-fan, the
simulator's cache rules, and what the cache saved (docs/caching.md)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp
import pytest

import fanwise
from fanwise.context import CacheReport, Material, block, cache_minimum, cache_report, warm_worthy
from fanwise.dispatch.base import Warm
from fanwise.engine import Call, Engine
from fanwise.models.base import Completion, DeltaSink, Endpoint, Request, Usage
from fanwise.models.requests import cache_key, with_cache_hints
from fanwise.models.settings import ModelSettings
from fanwise.prices import builtin_prices
from fanwise.simulator import Latency, Simulator
from fanwise.workflow import Plan, cache_ttl
from tests.conftest import SimulatorProcess, StartSimulator

CONTEXT = "The contract. " + "Clause text that goes on and on. " * 1500  # ~12,000 tokens
QUESTIONS = ("Who signs?", "When does it end?", "What does it cost?", "Who may cancel?")


def test_the_context_comes_after_the_instructions_and_before_the_question() -> None:
    """Every call carries the same bytes up to its question, which comes last."""
    plan = Plan("contract", QUESTIONS, context=(Material("contract.md", CONTEXT),))
    calls = plan.research_calls(ModelSettings(model="gpt-5"))
    instructions = {c.request.body["instructions"] for c in calls}
    assert len(instructions) == 1
    (shared,) = instructions
    assert shared == block(plan.context) and CONTEXT.strip() in shared
    assert [c.request.body["input"] for c in calls] == list(QUESTIONS)
    assert [c.label for c in calls] == list(QUESTIONS)


def test_openai_bodies_get_a_prompt_cache_key_from_the_prefix_and_gemini_none() -> None:
    """OpenAI's key is one per prefix (the same for every call); Gemini's endpoint gets none."""
    one = Request.text("Q1", model="gpt-5", instructions="Be brief.", context="CTX")
    two = Request.text("Q2", model="gpt-5", instructions="Be brief.", context="CTX")
    other = Request.text("Q1", model="gpt-5", instructions="Be brief.", context="OTHER")
    chat = Request.text("Q", model="gpt-5", context="CTX", endpoint=Endpoint.CHAT)
    gemini = Request.text("Q", model="gemini-2.5-flash", context="CTX", endpoint=Endpoint.CHAT)
    assert one.body["prompt_cache_key"] == two.body["prompt_cache_key"]
    assert one.body["prompt_cache_key"] != other.body["prompt_cache_key"]
    assert one.body["instructions"] == "Be brief.\n\nCTX"
    assert chat.body["messages"] == [
        {"role": "system", "content": "CTX"},
        {"role": "user", "content": "Q"},
    ]
    assert "prompt_cache_key" in chat.body and "prompt_cache_key" not in gemini.body


def test_a_prompt_cache_key_the_caller_gave_is_kept() -> None:
    """fanwise adds its key only where the body has none."""
    mine = {"prompt_cache_key": "mine"}
    request = Request.text("Q", model="gpt-5", context="CTX", extra=mine)
    assert request.body["prompt_cache_key"] == "mine"


def test_anthropic_bodies_mark_the_context_block_with_a_cache_breakpoint() -> None:
    """The instructions and the context are two system blocks; the breakpoint is on the second,
    with the 1-hour TTL when asked."""
    request = Request.text(
        "Q", model="claude-sonnet-4-5", instructions="Be brief.", context="CTX",
        endpoint=Endpoint.MESSAGES, cache_ttl="1h",
    )  # fmt: skip
    assert request.body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "CTX", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    assert request.body["messages"] == [{"role": "user", "content": "Q"}]
    assert "prompt_cache_key" not in request.body


def test_a_run_that_would_outlast_five_minutes_asks_anthropic_for_the_hour() -> None:
    """A wave of calls counts as a minute: five waves or fewer keep the 5-minute TTL."""
    assert cache_ttl(1) is None and cache_ttl(5) is None
    assert cache_ttl(6) == "1h"


def test_the_minimum_cacheable_prefix_is_the_providers_per_model() -> None:
    """OpenAI caches from 1,024 tokens; Claude Opus 4.5 only from 4,096; the offline model
    caches nothing, so warming it would only cost time."""
    assert cache_minimum("openai", "gpt-5") == 1024
    assert cache_minimum("anthropic", "claude-opus-4-5") == 4096
    assert cache_minimum("anthropic", "claude-sonnet-4-5") == 1024
    assert cache_minimum("offline", "gpt-5") is None
    assert warm_worthy(2000, 3, "openai", "gpt-5")
    assert not warm_worthy(2000, 3, "anthropic", "claude-opus-4-5")
    assert not warm_worthy(2000, 1, "openai", "gpt-5")
    assert not warm_worthy(50_000, 3, "offline", "gpt-5")


async def _post(sim: Simulator, path: str, body: Mapping[str, object]) -> dict[str, object]:
    headers = {"authorization": "Bearer sk-test", "x-api-key": "sk-test"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(sim.url + path, json=body, headers=headers) as response,
    ):
        data: dict[str, object] = await response.json()
        return data


async def test_the_simulator_caches_a_prefix_once_its_answer_has_begun(
    start_simulator: StartSimulator,
) -> None:
    """Two calls sent together both pay full price; a third, sent after them, reads the shared
    prefix in OpenAI's steps of 128 tokens."""
    sim = await start_simulator(latency=Latency.fixed(0.2))
    bodies = [{"model": "gpt-5", "instructions": CONTEXT, "input": q} for q in QUESTIONS[:3]]
    together = await asyncio.gather(*(_post(sim, "/v1/responses", b) for b in bodies[:2]))
    later = await _post(sim, "/v1/responses", bodies[2])
    cached = [r["usage"]["input_tokens_details"]["cached_tokens"] for r in [*together, later]]  # type: ignore[index]
    assert cached[:2] == [0, 0]
    assert cached[2] > 0.95 * len(CONTEXT) / 4 and cached[2] % 128 == 0


async def test_the_simulator_caches_an_anthropic_breakpoint_written_once_then_read(
    start_simulator: StartSimulator,
) -> None:
    """The first call writes the breakpoint's prefix, the next reads it; without a breakpoint
    Anthropic caches nothing."""
    sim = await start_simulator()
    system = [{"type": "text", "text": CONTEXT, "cache_control": {"type": "ephemeral"}}]

    def body(question: str, marked: bool = True) -> dict[str, object]:
        return {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "system": system if marked else CONTEXT,
            "messages": [{"role": "user", "content": question}],
        }

    first = await _post(sim, "/v1/messages", body("Q1"))
    second = await _post(sim, "/v1/messages", body("Q2"))
    plain = [await _post(sim, "/v1/messages", body(f"Q{n}", marked=False)) for n in (3, 4)]
    written = first["usage"]["cache_creation_input_tokens"]  # type: ignore[index]
    assert written > 0 and first["usage"]["cache_read_input_tokens"] == 0  # type: ignore[index]
    assert second["usage"]["cache_read_input_tokens"] == written  # type: ignore[index]
    assert second["usage"]["cache_creation_input_tokens"] == 0  # type: ignore[index]
    assert all(p["usage"]["cache_read_input_tokens"] == 0 for p in plain)  # type: ignore[index]


class _Gate:
    """A model that records when each request starts and streams its answer after a delay."""

    name = "gate"

    def __init__(self) -> None:
        self.events: list[str] = []

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        self.events.append(f"start {request.prompt}")
        await asyncio.sleep(0.05)
        if on_delta is not None:
            self.events.append(f"delta {request.prompt}")
            on_delta("first words ")
        await asyncio.sleep(0.05)
        self.events.append(f"end {request.prompt}")
        return Completion("first words and more", Usage(10, 5), model=request.model)

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> _Gate:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


async def test_warm_sends_the_first_call_alone_and_the_rest_once_its_answer_begins() -> None:
    """With warm, the second and third calls start after the first call's first text, not
    after its end; without it, all three start at once."""
    for warm, expected in (
        (True, ["start a", "delta a", "start b", "start c"]),
        (False, ["start a", "start b", "start c"]),
    ):
        model = _Gate()
        engine = Engine(model)
        calls = [Call(Request.text(p, model="gpt-5")) for p in "abc"]
        outcomes = await engine.run(calls, warm=warm)
        assert [o.status for o in outcomes] == ["fulfilled"] * 3
        starts = [e for e in model.events if e.startswith("start") or e == "delta a"]
        assert starts[: len(expected)] == expected
        assert model.events.index("start b") < model.events.index("end a") or not warm


@pytest.mark.parametrize(
    ("provider", "model", "options"),
    [
        ("openai", "gpt-5", {}),
        ("anthropic", "claude-sonnet-4-5", {"environ": {"ANTHROPIC_API_KEY": "sk-test"}}),
    ],
)
async def test_research_over_a_shared_context_reads_it_from_the_cache_after_the_first_call(
    start_simulator: StartSimulator, provider: str, model: str, options: dict[str, object]
) -> None:
    """Warm-then-fan: calls 2..N read the context from the cache; a naive fan-out (no warm)
    pays full price for every call."""
    sim = await start_simulator(latency=Latency.fixed(0.1))
    base = sim.base_url if provider == "openai" else sim.url
    kwargs: dict[str, object] = {"provider": provider, "model": model, "base_url": base, **options}
    results = {}
    for warm in (True, False):
        sim.reset()
        results[warm] = await fanwise.aresearch(
            f"contract {warm}",
            QUESTIONS,
            context=[CONTEXT],
            warm=warm,
            **kwargs,  # type: ignore[arg-type]
        )
    warmed = [a.outcome.value.usage for a in results[True].answers]  # type: ignore[union-attr]
    naive = [a.outcome.value.usage for a in results[False].answers]  # type: ignore[union-attr]
    assert warmed[0].cached_tokens == 0
    assert all(u.cached_tokens > 0.9 * len(CONTEXT) / 4 for u in warmed[1:])
    assert all(u.cached_tokens == 0 for u in naive)
    prices = builtin_prices()
    saved = cache_report(((model, u) for u in warmed), prices)
    assert saved.share > 0.7 and (saved.saved_usd or 0) > 0


def test_the_cache_report_prices_reads_and_anthropics_writes() -> None:
    """Reads save the input price less the cached price; a write costs its premium."""
    prices = builtin_prices()
    openai = cache_report([("gpt-5", Usage(input_tokens=1_000_000, cached_tokens=900_000))], prices)
    assert openai.share == 0.9
    assert openai.saved_usd == pytest.approx(0.9 * (1.25 - 0.125))
    anthropic = cache_report(
        [("claude-sonnet-4-5", Usage(input_tokens=1_000_000, cache_write_tokens=1_000_000))],
        prices,
    )
    assert anthropic.saved_usd == pytest.approx(-(3.75 - 3.00))
    assert CacheReport().line() is None
    assert openai.line() == "input: 90 % from cache, $1.01 saved"
    unpriced = cache_report([("my-model", Usage(input_tokens=10, cached_tokens=5))], prices)
    assert unpriced.saved_usd is None and "savings unknown" in (unpriced.line() or "")


def _fanwise(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fanwise", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "FANWISE_JOURNAL": "off"},
    )


def test_research_with_context_on_the_offline_model_says_what_a_provider_would_cache(
    tmp_path: Path,
) -> None:
    """The offline model caches nothing; the command says what the cache would have done."""
    document = tmp_path / "contract.md"
    document.write_text(CONTEXT, encoding="utf-8")
    done = _fanwise(
        "research", "contract", "--context", str(document), "-q", "Who?", "-q", "When?",
        "--plain", "--offline-latency", "0,0", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the offline model caches nothing" in done.stderr
    assert "the other 1 would read the context from it" in done.stderr
    assert json.loads(done.stdout)["cost"]["cache"]["cached_tokens"] == 0


def test_a_context_file_that_cannot_be_read_is_refused_before_any_call(tmp_path: Path) -> None:
    """A missing --context file: one line, exit 2."""
    done = _fanwise("research", "x", "--context", str(tmp_path / "nope.md"), "-q", "Who?")
    assert done.returncode == 2
    assert "--context" in done.stderr and "no such file" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_plan_reads_its_context_files_next_to_it(tmp_path: Path) -> None:
    """[research] context names files beside the plan, or gives text inline."""
    from fanwise.plans import load_plan

    (tmp_path / "contract.md").write_text("THE CONTRACT", encoding="utf-8")
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(
        'topic = "c"\n[research]\nquestions = ["Who?"]\n'
        'context = ["contract.md", { text = "A NOTE", name = "note" }]\n',
        encoding="utf-8",
    )
    plan = load_plan(plan_file).plan
    assert plan.context == (Material("contract.md", "THE CONTRACT"), Material("note", "A NOTE"))
    bad = tmp_path / "bad.toml"
    bad.write_text('topic = "c"\n[research]\nquestions = ["Who?"]\ncontext = ["gone.md"]\n')
    with pytest.raises(fanwise.plans.PlanError, match=r"bad\.toml:4: context 'gone\.md'"):
        load_plan(bad)


def test_the_simulators_common_prefix_agrees_with_a_character_walk() -> None:
    """The bisecting prefix length equals the plain one on equal, disjoint and partial texts."""
    from os.path import commonprefix

    from fanwise.simulator.prompt_cache import common_prefix_length

    for a, b in [("", ""), ("abc", "abc"), ("abc", "abd"), ("abc", "xbc"), ("ab", "abcd"),
                 (CONTEXT + "Q1", CONTEXT + "Q2")]:  # fmt: skip
        assert common_prefix_length(a, b) == len(commonprefix((a, b)))  # noqa: RUF071


async def test_a_stage_over_a_shared_context_warms_the_cache_and_reads_it(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """[[stage]] context: each of the stage's calls carries it before its prompt, the first
    call goes alone, and the others read the context from the cache."""
    from fanwise.plans import load_any
    from fanwise.stages import StagedResult

    (tmp_path / "contract.md").write_text(CONTEXT, encoding="utf-8")
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(
        'title = "review"\n[[stage]]\nname = "ask"\ncontext = ["contract.md"]\n'
        'questions = ["Who signs?", "When does it end?", "What does it cost?"]\n',
        encoding="utf-8",
    )
    loaded = load_any(plan_file, {})
    sim = await start_simulator(latency=Latency.fixed(0.1))
    result = await fanwise.arun(loaded.workflow, model="gpt-5", base_url=sim.base_url)  # type: ignore[union-attr]
    assert isinstance(result, StagedResult)
    branches = result.stage("ask").branches
    usage = [b.outcome.value.usage for b in branches]  # type: ignore[union-attr]
    assert usage[0].cached_tokens == 0
    assert all(u.cached_tokens > 0.9 * len(CONTEXT) / 4 for u in usage[1:])
    bad = tmp_path / "bad.toml"
    bad.write_text('[[stage]]\nname = "ask"\ncontext = ["gone.md"]\nquestions = ["Q?"]\n')
    with pytest.raises(fanwise.plans.PlanError, match=r"bad\.toml:3: .*context 'gone\.md'"):
        load_any(bad, {})


async def test_warm_first_answer_sends_the_rest_once_the_first_call_has_settled() -> None:
    """Warm.FIRST_ANSWER (a body the user wrote, not streamed): the rest wait for the end."""
    model = _Gate()
    calls = [Call(Request.text(p, model="gpt-5")) for p in "abc"]
    await Engine(model).run(calls, warm=Warm.FIRST_ANSWER)
    assert model.events[:2] == ["start a", "end a"], "no delta: the first call is not streamed"
    assert model.events.index("start b") > model.events.index("end a")


def test_cache_hints_for_a_body_the_user_wrote_mark_its_system_prompt_and_keep_its_own() -> None:
    """--cache-prefix: OpenAI bodies get a key from the system text, Anthropic's last system
    block a breakpoint; a body with its own hint, or no system text, is left as it was."""
    chat = {"model": "gpt-5", "messages": [{"role": "system", "content": "S"},
                                           {"role": "user", "content": "Q"}]}  # fmt: skip
    hinted = with_cache_hints("chat.completions", chat)
    assert hinted["prompt_cache_key"] == cache_key("S") and chat.get("prompt_cache_key") is None
    own = {**chat, "prompt_cache_key": "mine"}
    assert with_cache_hints("chat.completions", own) == own
    bare = {"model": "gpt-5", "input": "Q"}
    assert with_cache_hints("responses", bare) == bare
    messages = {"model": "claude-sonnet-4-5", "system": "S", "max_tokens": 9, "messages": []}
    assert with_cache_hints("messages", messages)["system"] == [
        {"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}
    ]
    marked = {**messages, "system": [{"type": "text", "text": "S", "cache_control": {}}]}
    assert with_cache_hints("messages", marked) == marked


def test_batch_cache_prefix_warms_the_shared_system_prompt(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """`fanwise batch --cache-prefix`: the first line goes alone, the rest read the shared
    system prompt from the cache; without the flag every line pays full price."""
    sim = spawn_simulator("--latency", "0.1")
    source = tmp_path / "in.jsonl"
    lines = [{"custom_id": f"q{n}", "prompt": f"question {n}", "system": CONTEXT} for n in range(4)]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    cached = {}
    said = {}
    for flag in ("--cache-prefix", None):
        out = tmp_path / f"{flag}.jsonl"
        args = ["batch", str(source), "-o", str(out), "--plain", "--no-journal", "-c", "8"]
        args += ["--provider", "openai", "--base-url", sim.base_url, "--model", "gpt-5"]
        done = subprocess.run(
            [sys.executable, "-m", "fanwise", *args, *([flag] if flag else [])],
            capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        rows = [json.loads(r) for r in out.read_text().splitlines()]
        usage = {r["custom_id"]: r["response"]["body"]["usage"] for r in rows}
        cached[flag] = [usage[f"q{n}"]["input_tokens_details"]["cached_tokens"] for n in range(4)]
        said[flag] = [line for line in done.stderr.splitlines() if line.startswith("💾")]
        reset = urllib.request.Request(sim.url + "/_control/reset", method="POST")
        urllib.request.urlopen(reset, timeout=10).close()
    assert cached["--cache-prefix"][0] == 0 and all(c > 0 for c in cached["--cache-prefix"][1:])
    assert cached[None] == [0, 0, 0, 0]
    assert len(said["--cache-prefix"]) == 1 and "from cache" in said["--cache-prefix"][0]
    assert "saved" in said["--cache-prefix"][0] and said[None] == []


async def test_a_gemini_explicit_cache_is_created_read_by_each_call_and_deleted(
    start_simulator: StartSimulator,
) -> None:
    """cachedContents: the context is held once, each chat call names it and reads its tokens
    as cached, and deleting it ends the storage the simulator bills by token-seconds."""
    from fanwise.context import cached_request, storage_cost
    from fanwise.models.gemini import GeminiModel

    sim = await start_simulator(latency=Latency.fixed(0.05))
    model = GeminiModel(api_key="sk-test", base_url=sim.url + "/v1beta/openai")
    async with model:
        cache = await model.cache_context("gemini-2.5-flash", "Be brief.", CONTEXT, ttl=600)
        assert cache.name.startswith("cachedContents/") and cache.tokens > 0.95 * len(CONTEXT) / 4
        plain = Request.text(
            "Who signs?", model="gemini-2.5-flash", instructions="Be brief.", context=CONTEXT,
            endpoint=Endpoint.CHAT, reasoning_effort=None,
        )  # fmt: skip
        asked = cached_request(plain, cache)
        assert [m["role"] for m in asked.body["messages"]] == ["user"]
        assert asked.body["extra_body"] == {"google": {"cached_content": cache.name}}
        answers = await asyncio.gather(*(model.complete(asked) for _ in range(3)))
        assert all(a.usage.cached_tokens == cache.tokens for a in answers)
        assert all(a.usage.input_tokens > cache.tokens for a in answers)
        await model.drop_cache(cache)
        with pytest.raises(fanwise.CallError, match="not found"):
            await model.complete(asked)
    held = sim.gemini_caches.stats()
    assert (held.created, held.deleted) == (1, 1) and held.token_seconds > 0
    cost = storage_cost(cache, 3600, builtin_prices())
    assert cost == pytest.approx(cache.tokens * 1.00 / 1e6)


def test_max_cost_estimates_use_the_cache_price_once_the_cache_is_warm() -> None:
    """Once a call of a cache group has read the shared context from the cache, the budget
    estimates the group's next calls at the cached price; other groups stay at full price."""
    from fanwise.budget import Budget
    from fanwise.events import CallSettled
    from fanwise.outcome import Fulfilled

    prices = builtin_prices()
    budget = Budget(100.0, prices)

    def ask(question: str, context: str) -> Call:
        return Call(Request.text(question, model="gpt-5", context=context))

    first, second = ask("Q1", CONTEXT), ask("Q2", CONTEXT)
    other = ask("Q3", CONTEXT + " An annex.")
    cold = budget.estimate(second)
    assert budget.admit(first) is None
    usage = Usage(input_tokens=len(CONTEXT) // 4, output_tokens=50,
                  cached_tokens=len(CONTEXT) // 4 - 20)  # fmt: skip
    answer = Completion("A1", usage, model="gpt-5")
    budget(CallSettled(0, first.key, "Q1", Fulfilled(answer, 1.0, 0.0), 1.0))
    warm, unrelated = budget.estimate(second), budget.estimate(other)
    assert cold is not None and warm is not None and unrelated is not None
    assert warm < 0.2 * unrelated, (warm, unrelated)  # both with the output learnt (50 tokens)
    assert warm < 0.2 * cold


async def test_a_large_gemini_fan_out_holds_its_context_in_an_explicit_cache(
    start_simulator: StartSimulator,
) -> None:
    """Eight questions or more over a context on Gemini: one cachedContents holds it for the
    research phase (no warm-up call needed), every call reads it, and it is deleted after."""
    sim = await start_simulator(latency=Latency.fixed(0.05))
    questions = [f"Question {n}?" for n in range(8)]
    result = await fanwise.aresearch(
        "contract", questions, context=[CONTEXT], provider="gemini", model="gemini-2.5-flash",
        base_url=sim.url + "/v1beta/openai", environ={"GEMINI_API_KEY": "sk-test"},
    )  # fmt: skip
    usages = [a.outcome.value.usage for a in result.answers]  # type: ignore[union-attr]
    assert all(u.cached_tokens > 0.95 * len(CONTEXT) / 4 for u in usages)
    held = sim.gemini_caches.stats()
    assert (held.created, held.deleted) == (1, 1)
    detail = result.stage("research").detail["explicit_cache"]
    assert detail["model"] == "gemini-2.5-flash" and detail["seconds"] > 0
    sent = [json.loads(body) for api, body in sim.received if api == "chat"][:8]
    assert all("cached_content" in str(b.get("extra_body")) for b in sent)
    assert all(m["role"] == "user" for b in sent for m in b["messages"])


def test_the_explicit_caches_storage_is_counted_in_the_runs_cost(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """--json: cost.cache.storage_usd is what holding the cache cost, part of cost.usd."""
    sim = spawn_simulator("--latency", "0.05")
    document = tmp_path / "contract.md"
    document.write_text(CONTEXT, encoding="utf-8")
    asks = [arg for n in range(8) for arg in ("-q", f"Question {n}?")]
    done = subprocess.run(
        [sys.executable, "-m", "fanwise", "research", "contract", "--context", str(document),
         *asks, "--provider", "gemini", "--base-url", sim.url + "/v1beta/openai",
         "--model", "gemini-2.5-flash", "--json", "--quiet", "--no-journal"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "GEMINI_API_KEY": "sk-test"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cost = json.loads(done.stdout)["cost"]
    assert cost["cache"]["storage_usd"] > 0
    assert cost["cache"]["cached_tokens"] > 8 * 0.95 * len(CONTEXT) / 4
    assert cost["usd"] > cost["cache"]["storage_usd"]


def test_the_report_live_and_saved_says_what_the_cache_saved(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """--report and `fanwise report RUN` both show the prompt cache's share and saving."""
    sim = spawn_simulator("--latency", "0.05")
    document = tmp_path / "contract.md"
    document.write_text(CONTEXT, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-test", "FANWISE_HOME": str(tmp_path)}

    def fanwise_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fanwise", *args], capture_output=True,
                              text=True, timeout=60, env=env)  # fmt: skip

    live = tmp_path / "live.html"
    done = fanwise_cli(
        "research", "contract", "--context", str(document), "-q", "Who?", "-q", "When?",
        "-q", "How much?", "--base-url", sim.base_url, "--model", "gpt-5", "--plain",
        "--report", str(live),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "💾 input:" in done.stderr and "from cache" in done.stderr
    saved = tmp_path / "saved.html"
    assert fanwise_cli("report", "1", "-o", str(saved)).returncode == 0
    for page in (live, saved):
        html = page.read_text(encoding="utf-8")
        assert "prompt cache" in html and "of input from the cache" in html, page
