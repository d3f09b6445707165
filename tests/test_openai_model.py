"""The OpenAI model over real loopback HTTP, through the real SDK, against the simulator."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from fanwise import Call, Engine, ErrorKind, Fulfilled, Rejected, Request, RetryPolicy
from fanwise.models.openai import OpenAIModel
from fanwise.outcome import CallError
from fanwise.simulator import Simulator
from tests.conftest import OnApi, SimulatorProcess, StartSimulator
from tests.processes import run_fanwise

PROMPT = "What are the top attractions to visit in Kyoto?"


def model_for(sim: Simulator, api: str = "responses") -> Any:
    return OnApi(OpenAIModel(api_key="test-key", base_url=sim.base_url), api)


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_both_apis_answer_with_text_usage_and_headers(simulator: Simulator, api: str) -> None:
    """Responses and Chat Completions both give text, token usage and the response headers."""
    model = model_for(simulator, api)
    completion = await model.complete(Request.text(PROMPT, model="gpt-5", instructions="Be brief."))
    await model.aclose()
    assert PROMPT[:40] in completion.text
    assert completion.usage.input_tokens > 0 and completion.usage.output_tokens > 0
    assert completion.model and completion.response_id
    assert "x-ratelimit-limit-requests" in completion.headers
    assert simulator.stats().attempts[PROMPT] == 1


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_both_apis_stream_the_same_text(simulator: Simulator, api: str) -> None:
    """Streaming hands over pieces that join up to the text the non-streaming call returns."""
    model = model_for(simulator, api)
    pieces: list[str] = []
    streamed = await model.complete(Request.text(PROMPT), on_delta=pieces.append)
    whole = await model.complete(Request.text(PROMPT))
    await model.aclose()
    assert len(pieces) > 1 and "".join(pieces) == streamed.text == whole.text
    assert streamed.usage.output_tokens > 0


@pytest.mark.parametrize(
    ("fault", "kind", "status"),
    [
        ("429", ErrorKind.RATE_LIMITED, 429),
        ("500", ErrorKind.SERVER, 500),
        ("503", ErrorKind.SERVER, 503),
        ("400", ErrorKind.BAD_REQUEST, 400),
        ("401", ErrorKind.AUTH, 401),
        ("drop", ErrorKind.NETWORK, None),
        ("garbage", ErrorKind.INVALID_RESPONSE, None),
    ],
)
@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_http_faults_become_classified_errors(
    simulator: Simulator, api: str, fault: str, kind: ErrorKind, status: int | None
) -> None:
    """Each fault the server can produce arrives as one kind of the taxonomy, never raw."""
    simulator.script(PROMPT, [fault], retry_after=0.25)
    model = model_for(simulator, api)
    with pytest.raises(CallError) as caught:
        await model.complete(Request.text(PROMPT))
    await model.aclose()
    assert caught.value.kind is kind
    assert caught.value.status_code == status
    if fault == "429":
        assert caught.value.retry_after == 0.25


async def test_the_engine_retries_a_429_through_the_real_sdk(simulator: Simulator) -> None:
    """Two 429s then success: three requests reach the server, the waits are its Retry-After."""
    simulator.script(PROMPT, ["429", "429", "ok"], retry_after=0.01)
    model = model_for(simulator)
    engine = Engine(model, retry=RetryPolicy(retries=3))
    [outcome] = await engine.run([Call(Request.text(PROMPT))])
    await model.aclose()
    assert isinstance(outcome, Fulfilled)
    assert simulator.stats().attempts[PROMPT] == 3
    assert [a.waited for a in outcome.attempts] == [0.0, 0.01, 0.01]


async def test_a_hang_is_cut_by_the_attempt_timeout(start_simulator: StartSimulator) -> None:
    """A server that never answers is a timeout after --timeout, and the request is cancelled."""
    sim = await start_simulator()
    sim.script(PROMPT, ["hang"])
    model = model_for(sim)
    [outcome] = await Engine(model, timeout=0.2, retry=RetryPolicy(retries=0)).run(
        [Call(Request.text(PROMPT))]
    )
    await model.aclose()
    assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.TIMEOUT


def cli(base_url: str, *args: str, key: str = "test-key") -> subprocess.CompletedProcess[str]:
    return run_fanwise(*args, env={"OPENAI_API_KEY": key, "OPENAI_BASE_URL": base_url})


def test_the_cli_uses_openai_when_a_key_is_set(simulator_process: str) -> None:
    """With OPENAI_API_KEY set, `fanwise travel` asks the server: four requests, a guide, exit 0."""
    result = cli(simulator_process, "travel", "Kyoto", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "complete" and data["synthesis"]["text"]
    assert "offline" not in result.stderr
    assert all(q["usage"]["input_tokens"] > 0 for q in data["questions"])


def test_a_refused_key_exits_2_and_is_never_printed(
    spawn_simulator: object,
) -> None:
    """Every call refused with 401: exit 2, the auth reason shown, the key itself nowhere."""
    sim: SimulatorProcess = spawn_simulator("--fail", "401=1")  # type: ignore[operator]
    secret = "sk-proj-SECRETSECRETSECRET1234"
    result = cli(sim.base_url, "travel", "Kyoto", "--retries", "0", key=secret)
    assert result.returncode == 2, result.stderr
    assert "auth" in result.stderr
    assert "SECRETSECRET" not in result.stderr + result.stdout
