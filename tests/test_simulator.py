"""The simulator, proven over real loopback HTTP with the official openai SDK as the client."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from click.testing import CliRunner
from openai import AsyncOpenAI
from openai.types.responses import ResponseCompletedEvent

from fanwise.simulator import (
    ConfigError,
    Latency,
    ScriptRule,
    Simulator,
    SimulatorConfig,
    parse_fault,
)
from fanwise.simulator.command import simulate
from fanwise.simulator.core import SimulatorCore
from fanwise.simulator.ratelimit import format_duration
from tests.conftest import SimulatorProcess, StartSimulator

LIMIT_HEADERS = [
    f"x-ratelimit-{part}-{unit}"
    for unit in ("requests", "tokens")
    for part in ("limit", "remaining", "reset")
]


@pytest.fixture
async def client(simulator: Simulator) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(api_key="test", base_url=simulator.base_url, max_retries=0) as c:
        yield c


def sdk(sim: Simulator, **options: Any) -> AsyncOpenAI:
    return AsyncOpenAI(api_key="test", base_url=sim.base_url, max_retries=0, **options)


async def ask(client: AsyncOpenAI, prompt: str = "What is Kyoto like?", **extra: Any) -> Any:
    return await client.responses.create(model="gpt-5", input=prompt, **extra)


def fault(kind: str, **more: str) -> dict[str, Any]:
    return {"extra_headers": {"x-fanwise-fault": kind, **more}}


async def until_idle(sim: Simulator) -> None:
    """Wait (briefly) until the server has finished every request it holds."""
    for _ in range(100):
        if sim.stats().in_flight == 0:
            return
        await asyncio.sleep(0.01)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the two APIs, as the SDK sees them ---------------------------------------------------------


async def test_responses_answer_parses_with_the_sdk(client: AsyncOpenAI) -> None:
    """A Responses call yields output_text derived from the prompt and realistic usage."""
    response = await ask(client, "What is Kyoto like in spring?", reasoning={"effort": "low"})
    assert response.output_text.startswith("simulated answer to: What is Kyoto like in spring?")
    usage = response.usage
    assert usage.input_tokens == 8  # 29 characters, about four a token
    assert usage.output_tokens_details.reasoning_tokens == 64
    assert usage.output_tokens > 64
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert [item.type for item in response.output] == ["reasoning", "message"]


async def test_chat_answer_parses_with_the_sdk(client: AsyncOpenAI) -> None:
    """A Chat Completions call yields the message content and prompt/completion token counts."""
    completion = await client.chat.completions.create(
        model="gpt-5",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
    )
    content = completion.choices[0].message.content
    assert content is not None and content.startswith("simulated answer to: hello there")
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_answers_are_deterministic(client: AsyncOpenAI) -> None:
    """The same prompt always gets the same text, and different prompts different text."""
    first, second, other = [await ask(client, p) for p in ("same", "same", "different")]
    assert first.output_text == second.output_text != other.output_text


async def test_responses_stream_sends_openai_events(client: AsyncOpenAI) -> None:
    """A Responses stream runs created -> deltas -> completed, and the deltas spell the answer."""
    stream = await client.responses.create(model="gpt-5", input="stream me", stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") > 3
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    last = events[-1]
    assert isinstance(last, ResponseCompletedEvent)
    final = last.response
    assert text == final.output_text
    assert final.usage is not None and final.usage.output_tokens > 0


async def test_chat_stream_ends_with_a_usage_chunk(client: AsyncOpenAI) -> None:
    """A Chat stream with include_usage sends content chunks, then usage, then [DONE]."""
    stream = await client.chat.completions.create(
        model="gpt-5",
        messages=[{"role": "user", "content": "stream chat"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("simulated answer to: stream chat")
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


async def test_chat_stream_without_include_usage_has_no_usage(client: AsyncOpenAI) -> None:
    """Without stream_options.include_usage no chunk carries usage, as with OpenAI."""
    stream = await client.chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks
    assert all(c.usage is None and c.choices for c in chunks)


async def test_max_output_tokens_makes_an_incomplete_answer(client: AsyncOpenAI) -> None:
    """A too-small max_output_tokens cuts the answer short, flagged as OpenAI flags it."""
    response = await ask(client, max_output_tokens=5)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens <= 5
    chat = await client.chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=5
    )
    assert chat.choices[0].finish_reason == "length"


async def test_models_are_listed(client: AsyncOpenAI) -> None:
    """GET /v1/models lists model ids through the SDK."""
    models = await client.models.list()
    assert "gpt-5" in [m.id for m in models.data]


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("400", openai.BadRequestError, "context_length_exceeded"),
        ("401", openai.AuthenticationError, "invalid_api_key"),
        ("404", openai.NotFoundError, "model_not_found"),
        ("409", openai.ConflictError, None),
        ("422", openai.UnprocessableEntityError, None),
        ("500", openai.InternalServerError, None),
        ("503", openai.InternalServerError, None),
    ],
)
async def test_status_faults_raise_the_sdk_error(
    client: AsyncOpenAI, kind: str, error: type[openai.APIStatusError], code: str | None
) -> None:
    """Each injected status reaches the SDK as its exception, with OpenAI's error body."""
    with pytest.raises(error) as caught:
        await ask(client, **fault(kind))
    assert caught.value.status_code == int(kind)
    assert isinstance(caught.value.body, dict)
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    assert caught.value.code == code


async def test_429_carries_retry_after_headers(client: AsyncOpenAI) -> None:
    """A 429 is a RateLimitError with Retry-After (whole seconds) and exact retry-after-ms."""
    with pytest.raises(openai.RateLimitError) as caught:
        await ask(client, **fault("429", **{"x-fanwise-retry-after": "0.05"}))
    headers = caught.value.response.headers
    assert headers["retry-after"] == "1"
    assert headers["retry-after-ms"] == "50"
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.type == "requests"


async def test_drop_is_a_connection_error(simulator: Simulator, client: AsyncOpenAI) -> None:
    """A dropped connection reaches the SDK as APIConnectionError, and the server lets go of it."""
    with pytest.raises(openai.APIConnectionError) as caught:
        await ask(client, **fault("drop"))
    assert not isinstance(caught.value, openai.APITimeoutError)
    await until_idle(simulator)
    assert simulator.stats().in_flight == 0


async def test_hang_times_out_and_frees_the_server(simulator: Simulator) -> None:
    """A hung request ends in APITimeoutError, and the server lets go when the client hangs up."""
    async with sdk(simulator, timeout=0.2) as client:
        with pytest.raises(openai.APITimeoutError):
            await ask(client, **fault("hang"))
    await until_idle(simulator)
    assert simulator.stats().in_flight == 0
    assert simulator.stats().by_fault == {"hang": 1}


async def test_garbage_is_a_200_that_is_not_json(client: AsyncOpenAI) -> None:
    """A garbage answer is a 200 whose body does not parse, in both APIs, streaming or not."""
    messages: Any = [{"role": "user", "content": "x"}]
    with pytest.raises(json.JSONDecodeError):
        await ask(client, **fault("garbage"))
    with pytest.raises(json.JSONDecodeError):
        await client.chat.completions.create(model="gpt-5", messages=messages, **fault("garbage"))
    streams = [
        await client.responses.create(model="gpt-5", input="x", stream=True, **fault("garbage")),
        await client.chat.completions.create(
            model="gpt-5", messages=messages, stream=True, **fault("garbage")
        ),
    ]
    for stream in streams:
        with pytest.raises(json.JSONDecodeError):
            _ = [event async for event in stream]


async def test_empty_is_a_200_without_the_promised_content(client: AsyncOpenAI) -> None:
    """An empty answer is valid JSON without output; its stream ends without response.completed."""
    raw = await client.responses.with_raw_response.create(
        model="gpt-5", input="x", **fault("empty")
    )
    assert raw.status_code == 200
    assert "output" not in raw.http_response.json()
    stream = await client.responses.create(model="gpt-5", input="x", stream=True, **fault("empty"))
    assert [e.type async for e in stream] == ["response.created"]


async def test_random_faults_are_reproducible(start_simulator: StartSimulator) -> None:
    """With a seed, each prompt's fate is the same whatever order requests arrive in."""
    config = SimulatorConfig(faults={"500": 0.5}, seed=7)
    prompts = [f"question {n}" for n in range(30)]

    async def fates(order: list[str]) -> dict[str, int]:
        sim = await start_simulator(config)
        async with sdk(sim) as client:

            async def one(prompt: str) -> int:
                try:
                    await ask(client, prompt)
                except openai.InternalServerError:
                    return 500
                return 200

            results = await asyncio.gather(*(one(p) for p in order))
        return dict(zip(order, results, strict=True))

    forward = await fates(prompts)
    backward = await fates(list(reversed(prompts)))
    assert forward == backward
    assert 5 < list(forward.values()).count(500) < 25


def test_latency_draws_depend_on_seed_prompt_and_attempt() -> None:
    """Latency is drawn from the seed, prompt and attempt: equal seeds agree, others differ."""
    body = json.dumps({"model": "gpt-5", "input": "q"}).encode()

    def delays(seed: int) -> list[float]:
        core = SimulatorCore(SimulatorConfig(latency=Latency.uniform(0.1, 5.0), seed=seed))
        return [core.call("responses", {}, body).delay for _ in range(3)]

    assert delays(1) == delays(1) != delays(2)
    assert len(set(delays(1))) == 3
    assert all(0.1 <= d <= 5.0 for d in delays(3))


async def test_fixed_latency_delays_the_answer(start_simulator: StartSimulator) -> None:
    """A fixed latency holds each answer back by that long."""
    sim = await start_simulator(latency=Latency.fixed(0.15))
    async with sdk(sim) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await ask(client)
        assert loop.time() - started >= 0.15


# --- scripts and control --------------------------------------------------------------------------


async def test_control_script_fails_matching_prompts_in_order(
    simulator: Simulator, client: AsyncOpenAI
) -> None:
    """POST /_control/script makes the next matching prompts get the listed faults in turn."""
    rule = [{"match": "Kyoto", "faults": ["429", "429", "ok"], "retry_after": 0.05}]
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{simulator.url}/_control/script", json=rule) as response:
            assert response.status == 200
            assert (await response.json())["script"] == rule
        for _ in range(2):
            with pytest.raises(openai.RateLimitError) as caught:
                await ask(client, "Tell me about Kyoto")
            assert caught.value.response.headers["retry-after-ms"] == "50"
        await ask(client, "Elsewhere")  # does not match, does not use a step
        await ask(client, "Tell me about Kyoto")
        await ask(client, "Kyoto again")  # the rule is used up
        async with http.get(f"{simulator.url}/_control/script") as response:
            assert (await response.json())["script"] == []
        async with http.get(f"{simulator.url}/_stats") as response:
            stats = await response.json()
    assert stats["attempts"] == {"Tell me about Kyoto": 3, "Elsewhere": 1, "Kyoto again": 1}
    assert stats["by_status"] == {"200": 3, "429": 2}


async def test_script_helper_and_reset(simulator: Simulator, client: AsyncOpenAI) -> None:
    """sim.script() scripts in-process, and /_control/reset clears scripts and stats."""
    simulator.script("flaky", ["500", "drop"])
    with pytest.raises(openai.InternalServerError):
        await ask(client, "a flaky question")
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{simulator.url}/_control/reset") as response,
    ):
        assert response.status == 200
    assert simulator.stats().requests == 0
    await ask(client, "a flaky question")  # the drop step was cleared


async def test_bad_script_is_refused_with_the_reason(simulator: Simulator) -> None:
    """A script with an unknown fault gets a 400 that names it."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{simulator.url}/_control/script", json=[{"match": "x", "faults": ["418x"]}]
        ) as response,
    ):
        assert response.status == 400
        assert "418x" in (await response.json())["error"]["message"]


async def test_bad_requests_get_openai_errors(simulator: Simulator) -> None:
    """Malformed JSON, a missing field and an unknown URL get OpenAI-shaped 400/404 errors."""
    async with aiohttp.ClientSession() as http:
        for path, body, status in [
            ("/v1/responses", b"{not json", 400),
            ("/v1/chat/completions", b'{"model": "gpt-5"}', 400),
            ("/v1/nowhere", b"{}", 404),
        ]:
            async with http.post(f"{simulator.url}{path}", data=body) as response:
                assert response.status == status
                assert set((await response.json())["error"]) == {"message", "type", "param", "code"}


async def test_context_window_is_enforced(start_simulator: StartSimulator) -> None:
    """Input beyond the context window gets 400 context_length_exceeded."""
    sim = await start_simulator(context_window=10)
    async with sdk(sim) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await ask(client, "word " * 20)
    assert caught.value.code == "context_length_exceeded"


# --- rate limits ---------------------------------------------------------------------------------


async def test_every_response_carries_rate_limit_headers(client: AsyncOpenAI) -> None:
    """Successes and errors alike carry the six x-ratelimit-* headers."""
    raw = await client.responses.with_raw_response.create(model="gpt-5", input="x")
    assert all(name in raw.headers for name in LIMIT_HEADERS)
    with pytest.raises(openai.InternalServerError) as caught:
        await ask(client, **fault("500"))
    assert all(name in caught.value.response.headers for name in LIMIT_HEADERS)


async def test_request_bucket_refuses_then_refills(start_simulator: StartSimulator) -> None:
    """With rpm=60 the 61st burst request is refused for 1s, and allowed once the clock moves."""
    clock = FakeClock()
    sim = await start_simulator(rpm=60, clock=clock)
    async with sdk(sim) as client:
        raw = await client.responses.with_raw_response.create(model="gpt-5", input="x")
        assert raw.headers["x-ratelimit-limit-requests"] == "60"
        assert raw.headers["x-ratelimit-remaining-requests"] == "59"
        assert raw.headers["x-ratelimit-reset-requests"] == "1s"
        await asyncio.gather(*(ask(client, f"q{n}") for n in range(59)))
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(client)
        clock.now += 1.0
        await ask(client)
    error = caught.value
    assert error.type == "requests"
    assert error.code == "rate_limit_exceeded"
    assert error.response.headers["retry-after-ms"] == "1000"
    assert error.response.headers["retry-after"] == "1"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert sim.stats().by_fault == {"rpm": 1}


async def test_token_bucket_counts_the_request(start_simulator: StartSimulator) -> None:
    """With tpm set, a request estimated above what is left is refused with type tokens."""
    sim = await start_simulator(tpm=600, clock=FakeClock())
    async with sdk(sim) as client:
        await ask(client, "x" * 1600)  # about 400 input tokens plus the answer
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(client, "x" * 1600)
    assert caught.value.type == "tokens"
    assert int(caught.value.response.headers["retry-after-ms"]) > 0


def test_durations_are_written_like_openai() -> None:
    """Reset durations use OpenAI's spelling: 20ms, 1s, 1.5s, 6m0s."""
    assert [format_duration(s) for s in (0, 0.02, 1, 1.5, 360, 3661)] == [
        "0s",
        "20ms",
        "1s",
        "1.5s",
        "6m0s",
        "1h1m1s",
    ]


# --- stats, connections, processes ----------------------------------------------------------------


async def test_stats_count_statuses_and_peak_in_flight(start_simulator: StartSimulator) -> None:
    """Stats count requests by status and record how many were in flight at once."""
    sim = await start_simulator(latency=Latency.fixed(0.1))
    async with sdk(sim) as client:
        await asyncio.gather(*(ask(client, f"q{n}") for n in range(8)))
        with pytest.raises(openai.RateLimitError):
            await ask(client, **fault("429"))
    stats = sim.stats()
    assert stats.requests == 9
    assert stats.peak_in_flight == 8
    assert stats.in_flight == 0
    assert stats.by_status == {200: 8, 429: 1}
    assert stats.by_fault == {"429": 1}
    assert stats.to_dict()["by_status"] == {"200": 8, "429": 1}


async def test_connections_are_kept_alive(simulator: Simulator) -> None:
    """Sequential requests reuse one HTTP/1.1 connection."""
    opened: list[object] = []

    async def on_create(*_: object) -> None:
        opened.append(object())

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    body = {"model": "gpt-5", "input": "hi"}
    async with aiohttp.ClientSession(trace_configs=[trace]) as http:
        for _ in range(5):
            async with http.post(f"{simulator.base_url}/responses", json=body) as response:
                assert response.status == 200
                await response.read()
    assert len(opened) == 1


def test_specs_are_validated_with_a_readable_error() -> None:
    """Bad fault and latency specs raise ConfigError saying what is wrong and how to fix it."""
    assert parse_fault("429=0.05") == ("429", 0.05)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        parse_fault("429=2")
    with pytest.raises(ConfigError, match="unknown fault 'teapot'"):
        parse_fault("teapot=0.1")
    with pytest.raises(ConfigError, match="lognormal:MEDIAN,SIGMA"):
        Latency.parse("normal:1,2")
    with pytest.raises(ConfigError, match=r"add up to 1\.2"):
        SimulatorConfig(faults={"429": 0.6, "500": 0.6})
    with pytest.raises(ConfigError, match="non-empty list"):
        ScriptRule("x", ())
    assert Latency.parse("lognormal:0.5,0.6") == Latency.lognormal(0.5, 0.6)
    assert Latency.parse("0.2").sample(random.Random(0)) == 0.2


def test_cli_rejects_a_bad_spec_with_exit_code_2() -> None:
    """`fanwise simulate --fail 429=2` is a usage error (exit 2) with the reason."""
    result = CliRunner().invoke(simulate, ["--fail", "429=2"])
    assert result.exit_code == 2
    assert "between 0 and 1" in result.output


async def test_simulator_process_serves_the_sdk(simulator_process: str) -> None:
    """The subprocess fixture starts a real server whose URL the SDK can use."""
    assert simulator_process.startswith("http://127.0.0.1:")
    async with AsyncOpenAI(api_key="test", base_url=simulator_process, max_retries=0) as client:
        response = await ask(client, "from a process")
    assert response.output_text.startswith("simulated answer to: from a process")


async def test_process_loads_a_script_file(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """`--script FILE` scripts a subprocess simulator from its first request."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"match": "", "faults": ["500", "ok"]}]))
    server = spawn_simulator("--script", str(script), "--seed", "3")
    async with AsyncOpenAI(api_key="test", base_url=server.base_url, max_retries=0) as client:
        with pytest.raises(openai.InternalServerError):
            await ask(client)
        await ask(client)


def test_public_names_are_sorted_and_importable() -> None:
    """fanwise.simulator re-exports one sorted __all__, and every name in it exists."""
    import fanwise.simulator as package

    assert package.__all__ == sorted(package.__all__)
    assert all(hasattr(package, name) for name in package.__all__)
