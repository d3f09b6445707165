"""``--engine ray``: an Engine with the RayDispatch on a local Ray instance (2 CPUs) against
simulators on loopback.

Skipped when Ray is not installed (it is the optional ``fanwise[ray]`` extra; ``make test-ray``
installs it and runs these).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fanwise import Call, Fulfilled, Rejected, Request, RetryPolicy
from fanwise.cli import cli
from fanwise.cluster import RayDispatch, WorkerPlan
from fanwise.cluster.dispatch import WORKER_PREFIX
from fanwise.cluster.models import OpenAIModels
from fanwise.cluster.worker import RUN_LIMITER, endpoint_limiter
from fanwise.engine import Engine
from fanwise.events import CallSettled, CallStarted, Event
from fanwise.journal import Journal, JournalStore
from fanwise.limits import AdaptiveConcurrency, Limits, Unlimited, build_limiter
from fanwise.models.openai import OpenAIModel
from fanwise.prices import PriceTable
from fanwise.simulator import Latency
from tests.conftest import StartSimulator

ray = pytest.importorskip(
    "ray", reason="Ray is not installed: pip install 'fanwise[ray]', or run make test-ray"
)
ACTORS = {"num_cpus": 0.5}


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray instance for the module: 2 CPUs, no dashboard, worker logs kept out."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


# Limiter factories go to the limiter actor by pickle: library callables, importable there.
one_at_a_time = partial(Limits, AdaptiveConcurrency(1, maximum=1))
unlimited = Unlimited
adaptive = partial(build_limiter, adaptive=True)


def asks(count: int) -> list[Call]:
    return [Call(Request.text(f"question {i}", model="gpt-5-mini")) for i in range(count)]


def engine(base_url: str, *, endpoints: tuple[str, ...] = (), **options: Any) -> Engine:
    names = [endpoint_limiter(n) for n in range(len(endpoints))] or [RUN_LIMITER]
    limits = options.pop("limits", dict.fromkeys(names, unlimited))
    plan = WorkerPlan(
        OpenAIModels(base_url),
        endpoints=endpoints,
        concurrency=options.pop("worker_concurrency", 4),
        retry=RetryPolicy(retries=2, base_delay=0.01),
    )
    driver = OpenAIModel(api_key="t", base_url=base_url)
    workers = options.pop("workers", 2)
    fleet = RayDispatch(plan=plan, limits=limits, workers=workers, actor_options=ACTORS)
    return Engine(driver, dispatch=fleet, **options)


class Events:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.seen.append(event)


async def test_calls_are_sharded_over_workers_and_endpoints_and_stream_back(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Two workers, two shared endpoint limiters: every call answered in order, journaled on the
    driver, and split evenly over the endpoints by the actor's view of both workers' load."""
    sims = [await start_simulator(latency=Latency.fixed(0.02)) for _ in range(2)]
    events = Events()
    with Journal.open(tmp_path / "j.db") as journal:
        run_id = journal.start_run("batch", "t", {}, endpoint="sim")
        store = JournalStore(journal, run_id, prices=PriceTable(), endpoint="sim")
        fleet = engine(
            sims[0].base_url,
            endpoints=tuple(s.base_url for s in sims),
            limits={endpoint_limiter(0): adaptive, endpoint_limiter(1): adaptive},
            workers=2,
            store=store,
            observer=events,
        )
        outcomes = await fleet.run(asks(16))
        assert journal.totals(run_id).fulfilled == 16
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    texts = [o.value.text.splitlines()[0] for o in outcomes if isinstance(o, Fulfilled)]
    assert texts == [f"simulated answer to: question {i}" for i in range(16)]
    split = [s.stats().requests for s in sims]
    assert sum(split) == 16
    assert abs(split[0] - split[1]) <= 4, split
    started = {e.index for e in events.seen if isinstance(e, CallStarted)}
    assert started == set(range(16))  # the workers' events reached the driver
    assert len([e for e in events.seen if isinstance(e, CallSettled)]) == 16


async def test_a_gateways_limit_on_two_endpoints_loses_no_call(
    start_simulator: StartSimulator,
) -> None:
    """Two gateways whose reset is the time to the next request (a one-second bucket that
    starts empty), two workers, retries=2: the actor's verdict makes their 429s back-pressure,
    the headers are dropped for the learned rate, and every call is fulfilled with 429s within
    one window (8 attempts in flight) plus 10 % of the calls."""
    sims = [
        await start_simulator(
            latency=Latency.fixed(0.05),
            rpm=1800,
            burst=1.0,
            start_empty=True,
            limit_style="next-request",
        )
        for _ in range(2)
    ]
    fleet = engine(
        sims[0].base_url,
        endpoints=tuple(s.base_url for s in sims),
        limits={endpoint_limiter(0): adaptive, endpoint_limiter(1): adaptive},
        workers=2,
    )
    outcomes = await fleet.run(asks(120))
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    refused = sum(s.stats().by_status.get(429, 0) for s in sims)
    assert refused <= 8 + 12, [s.stats().by_status for s in sims]


async def test_the_limits_are_shared_by_every_worker(start_simulator: StartSimulator) -> None:
    """One slot in the shared limiter: two workers of four calls each still send one at a time."""
    sim = await start_simulator(latency=Latency.fixed(0.02))
    fleet = engine(sim.base_url, workers=2, limits={RUN_LIMITER: one_at_a_time})
    outcomes = await fleet.run(asks(8))
    assert all(o.ok for o in outcomes)
    assert sim.stats().peak_in_flight == 1


async def test_a_killed_worker_costs_only_its_calls_in_flight(
    start_simulator: StartSimulator,
) -> None:
    """Killing a worker mid-run: all calls still answered; only its unrecorded ones went twice."""
    sim = await start_simulator(latency=Latency.fixed(0.3))
    events = Events()
    killed: list[str] = []
    recorded_at_kill: set[str] = set()

    def kill_first_worker(event: Event) -> None:
        events(event)
        if isinstance(event, CallSettled) and not killed:
            recorded_at_kill.add(event.label)
            names = sorted(n for n in ray.util.list_named_actors() if n.startswith(WORKER_PREFIX))
            killed.append(names[0])
            ray.kill(ray.get_actor(names[0]))

    fleet = engine(sim.base_url, workers=2, worker_concurrency=2, observer=kill_first_worker)
    calls = asks(12)
    outcomes = await fleet.run(calls)
    assert isinstance(fleet.dispatch, RayDispatch)
    assert killed == [
        f"{WORKER_PREFIX}{fleet.dispatch.tag}-0-0"
    ]  # while it still had calls to make
    assert all(o.ok for o in outcomes)  # its calls went to a fresh worker
    twice = {prompt for prompt, count in sim.stats().attempts.items() if count > 1}
    dead_shard = {c.request.prompt for c in calls[0::2]}  # worker 0's calls, dealt round robin
    # Only calls of the dead worker that the driver had not recorded may go out again: those in
    # flight, and those answered but still on their way back when it died.
    assert twice <= dead_shard - recorded_at_kill
    assert max(sim.stats().attempts.values()) <= 2  # and none more than once again


async def test_a_resumed_run_sends_only_what_the_dead_driver_had_not_recorded(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """The driver dies mid-run; the resume answers the rest and asks nothing recorded again."""
    sim = await start_simulator(latency=Latency.fixed(0.1))
    calls = asks(10)
    with Journal.open(tmp_path / "j.db") as journal:
        run_id = journal.start_run("batch", "t", {}, endpoint="sim")
        first_done = asyncio.Event()

        def on_settled(event: Event) -> None:
            if isinstance(event, CallSettled):
                first_done.set()

        store = JournalStore(journal, run_id, prices=PriceTable(), endpoint="sim")
        first = engine(sim.base_url, workers=2, store=store, observer=on_settled)
        task = asyncio.create_task(first.run(calls))
        await first_done.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        journal.flush()  # the writer thread commits what settled before the driver died
        recorded = journal.totals(run_id).fulfilled
        assert 1 <= recorded < 10
        store = JournalStore(journal, run_id, prices=PriceTable(), endpoint="sim", resume=True)
        outcomes = await engine(sim.base_url, workers=2, store=store).run(calls)
    assert all(o.ok for o in outcomes)
    assert sum(isinstance(o, Fulfilled) and o.cached for o in outcomes) == recorded
    once = [
        f"question {i}" for i, o in enumerate(outcomes) if isinstance(o, Fulfilled) and o.cached
    ]
    assert all(sim.stats().attempts[prompt] == 1 for prompt in once)


async def test_fail_fast_cancels_the_calls_not_finished(start_simulator: StartSimulator) -> None:
    """With fail_fast, the first rejection cancels what is left."""
    sim = await start_simulator(latency=Latency.fixed(0.2))
    sim.script("question 0", ["400"])
    outcomes = await engine(sim.base_url, workers=2).run(asks(20), fail_fast=True)
    assert isinstance(outcomes[0], Rejected) and outcomes[0].kind.value == "bad_request"
    assert any(isinstance(o, Rejected) and o.kind.value == "cancelled" for o in outcomes)


async def test_a_worker_that_cannot_build_its_model_fails_the_run_once() -> None:
    """A bad model setting is an error of the run, raised once, not a worker death retried."""
    plan = WorkerPlan(OpenAIModels("http://127.0.0.1:9/v1", transport="bogus"))
    driver = OpenAIModel(api_key="t", base_url="http://127.0.0.1:9/v1")
    dispatch = RayDispatch(plan=plan, limits={RUN_LIMITER: unlimited}, actor_options=ACTORS)
    fleet = Engine(driver, dispatch=dispatch)
    with pytest.raises(ValueError, match="transport must be"):
        await fleet.run(asks(2))


def test_the_command_line_runs_a_batch_file_on_ray(simulator_process: str, tmp_path: Path) -> None:
    """`fanwise batch --engine ray --workers 2`: every line answered and written by custom_id."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"prompt": "q{i}", "custom_id": "c{i}"}}\n' for i in range(8)))
    out = tmp_path / "out.jsonl"
    target = ["--provider", "openai", "--base-url", simulator_process]
    result = CliRunner().invoke(
        cli,
        ["batch", str(source), "--engine", "ray", "--workers", "2", "-o", str(out), *target],
        env={"OPENAI_API_KEY": "test"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["custom_id"] for line in lines) == [f"c{i}" for i in range(8)]
    assert all(line["response"]["status_code"] == 200 for line in lines)


def test_a_plan_of_stages_runs_on_ray(simulator_process: str, tmp_path: Path) -> None:
    """`fanwise run PLAN --engine ray`: each stage's calls go through the workers; the map
    stage is as wide as the outline's list and every stage is fulfilled."""
    journal = tmp_path / "journal.db"
    args = ["run", "city-districts", "--set", "city=Lyon", "--engine", "ray", "--workers", "2"]
    args += ["--provider", "openai", "--base-url", simulator_process, "--journal", str(journal)]
    result = CliRunner().invoke(
        cli, [*args, "--json", "--quiet"], env={"OPENAI_API_KEY": "test"}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [s["status"] for s in data["stages"]] == ["fulfilled"] * 3
    outline, district, _ = data["stages"]
    assert district["width"] == len(outline["value"]["districts"]) >= 3
    rows = sqlite3.connect(journal).execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert rows == 2 + district["width"]


LOCAL_RAY = """
import json, os, ray
from fanwise.cluster.setup import start_ray
from fanwise.config import RunConfig

start_ray(RunConfig(provider="openai", retries=2, engine="ray", workers=1))
key = ray.remote(num_cpus=0.25)(lambda: os.environ.get("OPENAI_API_KEY"))
print(json.dumps({
    "key": ray.get(key.remote()),
    "cpus": ray.cluster_resources()["CPU"],
    "runtime_env": ray.get_runtime_context().runtime_env,
}))
"""


def test_a_local_ray_is_sized_to_the_run_and_its_workers_inherit_the_key() -> None:
    """The CLI's own Ray: one CPU per actor of the run, the key in the workers, no runtime_env."""
    env = {**os.environ, "OPENAI_API_KEY": "sk-inherited", "RAY_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, "-c", LOCAL_RAY], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["key"] == "sk-inherited"
    assert seen["cpus"] == 2  # the limiter and the one worker: Ray prestarts just those
    assert not seen["runtime_env"]  # else Ray boots fresh processes instead of those


async def test_fanwise_run_on_ray_speaks_anthropic(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """engine="ray" from Python: the workers build Anthropic's model through the library's one
    factory from the key-free config, so a claude run fans out over Ray to /v1/messages."""
    import fanwise
    from fanwise.stages import Stage, Workflow

    sim = await start_simulator()
    workflow = Workflow(
        (
            Stage("facts", questions=tuple(f"fact {i} about tea?" for i in range(4))),
            Stage("summary", prompt="Summarise:\n{facts}"),
        ),
        title="tea",
    )
    result = await fanwise.arun(
        workflow,
        model="claude-sonnet-4-5",
        provider="anthropic",
        base_url=sim.url,
        engine="ray",
        workers=1,
        journal=tmp_path / "journal.db",
        environ={},
    )
    document = result.to_dict()
    assert document["status"] == "complete", document
    assert isinstance(document["run"]["id"], int)
    assert sim.stats().by_endpoint.get("/v1/messages") == 5
