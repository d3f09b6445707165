"""``--engine batch`` on Anthropic's Message Batches API, against the simulator's own.

The same dispatch as OpenAI's Batch API (``BatchAPI``), through ``AnthropicBatchClient``: the
calls go out as one Message Batch, come back by ``custom_id`` in any order, are journaled, and
a killed process's batch is adopted by ``fanwise resume`` without being sent again.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from fanwise import Call, Fulfilled, Rejected, Request, RetryPolicy
from fanwise.batchapi import Polling
from fanwise.batchapi.anthropic import LIMITS, AnthropicBatchClient, result_line
from fanwise.engine import Engine
from fanwise.models.anthropic import AnthropicModel
from fanwise.models.base import Endpoint
from fanwise.outcome import ErrorKind
from fanwise.retry import NoWait
from fanwise.simulator import Simulator
from tests.conftest import SimulatorProcess, batch_engine
from tests.processes import kill_once_submitted, run_fanwise, start_fanwise

FAST = Polling(first=0.01, factor=2.0, most=0.05)


def ask(prompt: str) -> Call:
    request = Request.text(prompt, "claude-haiku-4-5", endpoint=Endpoint.MESSAGES)
    return Call(request, label=prompt)


def engine(sim: Simulator, **options: Any) -> Engine:
    model = AnthropicModel(api_key="test", base_url=sim.url)
    batches = AnthropicBatchClient(api_key="test", base_url=sim.url)
    options.setdefault("retry", RetryPolicy(retries=2))
    return batch_engine(
        model, batches=batches, limits=LIMITS, polling=FAST, sleep=NoWait(), **options
    )


async def listed(root: str) -> list[dict[str, Any]]:
    """The simulator's Message Batches, newest first, over HTTP from inside the event loop."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{root}/v1/messages/batches?limit=100") as response,
    ):
        data: list[dict[str, Any]] = (await response.json())["data"]
    return data


def message_batches(root: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{root}/v1/messages/batches?limit=100", timeout=10) as response:
        data: list[dict[str, Any]] = json.load(response)["data"]
    return data


async def test_two_thousand_requests_go_out_as_one_message_batch(simulator: Simulator) -> None:
    """2,000 calls: one Message Batch, every answer a whole Message, none sent live."""
    calls = [ask(f"Question {i} about Kyoto") for i in range(2000)]
    outcomes = await engine(simulator).run(calls)
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    assert [o.value.text.split("\n")[0] for o in outcomes[:2]] == [  # type: ignore[union-attr]
        "simulated answer to: Question 0 about Kyoto",
        "simulated answer to: Question 1 about Kyoto",
    ]
    first = outcomes[0].value  # type: ignore[union-attr]
    assert first.endpoint is Endpoint.MESSAGES and first.body["type"] == "message"
    [batch] = await listed(simulator.url)
    assert batch["processing_status"] == "ended"
    assert batch["request_counts"]["succeeded"] == 2000
    assert simulator.stats().requests == 0, "no live call"


async def test_failed_lines_are_classified_and_retried_in_a_new_batch(
    simulator: Simulator,
) -> None:
    """An overloaded line goes again in a second batch; a bad request and a spend limit stop."""
    simulator.script("overloaded", ["529", "ok"])
    simulator.script("poison", ["400"])
    simulator.script("spend", ["spend"])
    outcomes = await engine(simulator).run(
        [ask("fine"), ask("overloaded"), ask("poison"), ask("spend")]
    )
    fine, overloaded, poison, spend = outcomes
    assert isinstance(fine, Fulfilled) and len(fine.attempts) == 1
    assert isinstance(overloaded, Fulfilled) and len(overloaded.attempts) == 2
    assert overloaded.attempts[0].error and overloaded.attempts[0].error["kind"] == "server"
    assert isinstance(poison, Rejected) and poison.kind is ErrorKind.BAD_REQUEST
    assert isinstance(spend, Rejected) and spend.kind is ErrorKind.AUTH
    assert len(await listed(simulator.url)) == 2


def test_result_lines_read_as_the_batch_api_reads_them() -> None:
    """succeeded, errored, canceled and expired become the Batch API's result lines."""
    message = {"type": "message", "content": [{"type": "text", "text": "hi"}]}
    ok = result_line({"custom_id": "3-abc", "result": {"type": "succeeded", "message": message}})
    assert ok == {"id": "3-abc", "custom_id": "3:abc",
                  "response": {"status_code": 200, "body": message}, "error": None}  # fmt: skip
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}
    errored = result_line({"custom_id": "4-k", "result": {"type": "errored", "error": overloaded}})
    assert errored["response"] == {"status_code": 529, "body": overloaded}
    expired = result_line({"custom_id": "5-k", "result": {"type": "expired"}})
    assert expired["error"]["code"] == "batch_expired" and expired["response"] is None


ANTHROPIC_ONLY = {
    "ANTHROPIC_API_KEY": "test",
    "OPENAI_API_KEY": None,
    "OPENAI_BASE_URL": None,
    "FANWISE_MODEL": None,
}


def test_resume_adopts_the_message_batch_a_killed_process_left_running(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """kill -9 mid-poll; `fanwise resume` collects the running batch without sending another."""
    sim = spawn_simulator("--batch-speed", "150")  # a batch takes about 5 s
    source = tmp_path / "in.jsonl"
    count = 2000
    lines = [{"prompt": f"question {i}", "custom_id": f"q{i}"} for i in range(count)]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    journal, out = tmp_path / "journal.db", tmp_path / "out.jsonl"
    process = start_fanwise(
        "batch", str(source), "--engine", "batch", "--batch-poll", "0.1", "-o", str(out),
        "--journal", str(journal), "--quiet", "--provider", "anthropic", "--base-url", sim.url,
        "--model", "claude-haiku-4-5", env=ANTHROPIC_ONLY,
    )  # fmt: skip
    kill_once_submitted(process, journal, within=60, then=0.3)  # mid-poll
    [running] = message_batches(sim.url)
    assert running["processing_status"] == "in_progress"

    done = start_fanwise("resume", "1", "--journal", str(journal), "--quiet", env=ANTHROPIC_ONLY)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["custom_id"] for r in results) == sorted(f"q{i}" for i in range(count))
    assert results[0]["response"]["body"]["type"] == "message"
    [batch] = message_batches(sim.url)
    assert batch["id"] == running["id"] and batch["request_counts"]["succeeded"] == count


def test_a_message_batch_costs_half_the_live_price(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """`fanwise batch --engine batch --provider anthropic`: each line at half its live cost."""
    from click.testing import CliRunner

    from fanwise.cli import cli

    sim = spawn_simulator()
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"prompt": f"q {i}", "custom_id": f"q{i}"}) + "\n"
                              for i in range(4)))  # fmt: skip
    env = {"ANTHROPIC_API_KEY": "test", "OPENAI_API_KEY": "", "FANWISE_MODEL": ""}
    target = ["--provider", "anthropic", "--base-url", sim.url, "--model", "claude-haiku-4-5"]

    def cost(*flags: str) -> list[float]:
        out = tmp_path / f"out{len(flags)}.jsonl"
        args = ["batch", str(source), "-o", str(out), "--quiet", *flags, *target]
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        return sorted(line["fanwise"]["cost_usd"] for line in lines)

    live, batched = cost(), cost("--engine", "batch", "--batch-poll", "0.05")
    assert all(c > 0 for c in live)
    assert batched == [round(c / 2, 8) for c in live]


def test_a_batch_engine_without_an_anthropic_key_is_a_usage_error(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """--engine batch or auto on Anthropic without a key (a keyless --base-url server): one
    line, exit 2, before any request, and no run left in the journal."""
    sim = spawn_simulator()
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"prompt": "hi"}) + "\n")
    journal = tmp_path / "journal.db"
    for engine in ("batch", "auto"):
        done = run_fanwise(
            "batch", str(source), "--engine", engine, "--deadline", "2m", "-o",
            str(tmp_path / "out.jsonl"), "--journal", str(journal), "--provider", "anthropic",
            "--base-url", sim.url, env={**ANTHROPIC_ONLY, "ANTHROPIC_API_KEY": None},
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "ANTHROPIC_API_KEY" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    listed = run_fanwise("runs", "--journal", str(journal), "--json", env=ANTHROPIC_ONLY)
    assert not journal.exists() or json.loads(listed.stdout) in ([], {"runs": []}), listed.stdout
