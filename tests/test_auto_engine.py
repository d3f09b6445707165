"""``--engine auto``: the switch rule on a stepping clock, and ``Auto`` against the simulator."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fanwise import Call, Fulfilled, Request
from fanwise.batchapi import BatchClient, JournalLedger
from fanwise.batchapi.ledger import recent_pace
from fanwise.dispatch.auto import Auto
from fanwise.dispatch.base import answered_via
from fanwise.dispatch.deadline import (
    MIN_MARGIN,
    SAFETY,
    LiveEstimate,
    Planner,
    forecast,
    live_estimate,
    parse_deadline,
)
from fanwise.dispatch.paths import path_totals
from fanwise.engine import Engine
from fanwise.events import BatchProgress, Event, Observer
from fanwise.journal import Journal, JournalStore
from fanwise.limits import build_limiter
from fanwise.models.openai import OpenAIModel
from fanwise.outcome import BadRequest
from fanwise.prices import Price, PriceTable
from fanwise.simulator import BatchTiming, Simulator
from fanwise.simulator.batches import BatchService
from fanwise.simulator.reply import Reply
from tests.conftest import StartSimulator

LIVE = LiveEstimate(rate=2.0, latency=1.0, why="test")
PRICES = PriceTable({"gpt-5-mini": Price(1.0, 1.0)})


class SteppingClock:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_switch_comes_at_the_last_safe_moment_on_a_stepping_clock() -> None:
    """With 20 lines open at 2 calls/s, the switch is at deadline - margin - 11 s, not before."""
    clock = SteppingClock(0.5)
    planner = Planner(deadline=100.0, total=20)
    needed = 20 / 2.0 + 1.0
    expected = 100.0 - (SAFETY * needed + MIN_MARGIN) - needed
    seen = []
    while True:
        now = clock()
        decision = planner.decide(now, 20, LIVE)
        seen.append(planner.wait(now, decision.at))
        if decision.switch:
            break
    assert expected <= now < expected + 0.5
    assert "20 lines left" in decision.reason
    assert seen[0] > seen[-2]  # the looks come closer as the switch nears


def test_a_batch_that_completes_lines_moves_the_switch_later() -> None:
    """Fewer open lines need less live time, so the last safe moment is later."""
    planner = Planner(deadline=100.0, total=20)
    assert planner.decide(0.0, 4, LIVE).at > planner.decide(0.0, 20, LIVE).at


def test_the_batch_pace_comes_from_its_counts() -> None:
    """10 of 40 lines in 10 s: the batch is expected done 30 s later."""
    planner = Planner(deadline=100.0, total=40)
    planner.watch.saw(0.0, 0)
    planner.watch.saw(10.0, 10)
    assert planner.watch.eta(10.0) == pytest.approx(40.0)


def test_the_live_pace_is_the_slowest_limit_the_limiter_knows() -> None:
    """--rpm 60 is slower than 8 calls at once of 1 s each: it sets the pace."""
    limiter = build_limiter(rpm=60)
    estimate = live_estimate(limiter, 8, latency=1.0)
    assert estimate.rate == pytest.approx(1.0) and estimate.why == "--rpm"
    assert live_estimate(None, 8, latency=1.0).rate == pytest.approx(8.0)
    assert live_estimate(None, 8).latency == 10.0  # the slow guess before any evidence


def test_a_deadline_too_short_for_all_live_is_said_with_what_would_be_done() -> None:
    """100 lines at 2 calls/s need 51 s: with 20 s, about 38 would be done."""
    plan = forecast(100, 20.0, LIVE)
    assert not plan.feasible and plan.by_deadline == 38
    assert "too short" in " ".join(plan.lines())
    assert forecast(100, 1000.0, LIVE, batch_seconds=60.0).batch_lines == 100
    late = forecast(100, -5.0, LIVE)  # a resume after the deadline
    assert not late.feasible and "has passed" in late.lines()[0]


def test_deadlines_read_as_spans_times_of_day_and_iso() -> None:
    """2h, 07:00 (the next one) and an ISO time are seconds from now; a past one is refused."""
    now = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    assert parse_deadline("2h", now) == 7200
    assert parse_deadline("1h30m", now) == 5400
    assert parse_deadline("40", now) == 40
    assert parse_deadline("07:00", now) == 23 * 3600
    assert parse_deadline("2026-12-06T09:00:00+00:00", now) == 3600
    for bad in ("soon", "2026-12-06T07:00:00+00:00", "25:00"):
        with pytest.raises(ValueError, match=r"deadline|passed|time of day"):
            parse_deadline(bad, now)


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    with Journal.open(tmp_path / "journal.db") as opened:
        yield opened


@pytest.fixture
async def stalling(start_simulator: StartSimulator) -> Simulator:
    timing = BatchTiming(speed=1.0, validate=0.05, duration=1.0, finalize=0.05, stall_at=0.4)
    return await start_simulator(batch=timing)


def auto_engine(
    model: OpenAIModel, deadline: float, journal: Journal | None = None, run_id: int = 0,
    *, resume: bool = False, observer: Observer | None = None,
) -> tuple[Engine, Auto]:  # fmt: skip
    store = None
    if journal is not None:
        store = JournalStore(journal, run_id, prices=PRICES, endpoint="sim", resume=resume)
    engine = Engine(model, store=store, observer=observer)
    ledger = JournalLedger(journal, run_id) if journal is not None else None
    auto = Auto(
        BatchClient(model.client),
        engine.live,
        deadline=time.time() + deadline,
        ledger=ledger,
        latency=0.2,
    )
    engine.dispatch = auto
    return engine, auto


def asks(count: int) -> list[Call]:
    return [Call(Request.text(f"q{i}", model="gpt-5-mini"), label=f"r{i}") for i in range(count)]


async def test_a_batch_done_in_time_answers_every_line_at_batch_price(
    start_simulator: StartSimulator,
) -> None:
    """A batch that ends well before the deadline: every line by the batch, no live call."""
    timing = BatchTiming(speed=1.0, validate=0.05, duration=0.3, finalize=0.05)
    simulator = await start_simulator(batch=timing)
    async with OpenAIModel(api_key="t", base_url=simulator.base_url) as model:
        engine, auto = auto_engine(model, 20.0)
        outcomes = await engine.run(asks(10), deadline=20.0)
    assert [answered_via(o) for o in outcomes] == ["batch"] * 10
    assert auto.switch is None and simulator.stats().requests == 0


async def test_a_stalled_batch_is_cancelled_its_lines_kept_and_the_rest_sent_live(
    stalling: Simulator,
) -> None:
    """Stalled at 40 %: the 4 lines it completed are kept, the 6 others go live, none twice."""
    async with OpenAIModel(api_key="t", base_url=stalling.base_url) as model:
        engine, auto = auto_engine(model, 4.0)
        outcomes = await engine.run(asks(10), deadline=4.0)
    assert all(isinstance(o, Fulfilled) for o in outcomes)
    assert [answered_via(o) for o in outcomes] == ["batch"] * 4 + ["live"] * 6
    assert auto.switch is not None and auto.twice == 0
    assert stalling.stats().requests == 6  # live calls: only the lines the batch did not do
    batch = next(iter(stalling.batches.batches.values()))
    assert batch.status == "cancelled"


async def test_a_deadline_too_short_even_for_all_live_sends_everything_live_at_once(
    stalling: Simulator,
) -> None:
    """No batch is made when even all-live cannot meet the deadline."""
    async with OpenAIModel(api_key="t", base_url=stalling.base_url) as model:
        engine, auto = auto_engine(model, 0.5)
        outcomes = await engine.run(asks(10), deadline=0.5)
    assert auto.forecast is not None and not auto.forecast.feasible
    assert not stalling.batches.batches
    assert {answered_via(o) for o in outcomes if o.ok} <= {"live"}


async def test_a_killed_run_resumes_against_the_same_deadline_without_paying_twice(
    stalling: Simulator, journal: Journal
) -> None:
    """Killed after its batch is made, the resume adopts the batch: one answer per line."""
    run_id = journal.start_run("batch", "t", {}, endpoint="sim")
    deadline = time.time() + 5.0
    async with OpenAIModel(api_key="t", base_url=stalling.base_url) as model:
        made = asyncio.Event()

        def seen(event: Event) -> None:
            if isinstance(event, BatchProgress):
                made.set()

        engine, _ = auto_engine(model, 5.0, journal, run_id, observer=seen)
        first = asyncio.create_task(engine.run(asks(10), deadline=5.0))
        await made.wait()
        first.cancel()  # the process dies: nothing settles, the batch stays open in the ledger
        with pytest.raises(asyncio.CancelledError):
            await first
        journal.flush()
        engine, auto = auto_engine(model, deadline - time.time(), journal, run_id, resume=True)
        outcomes = await engine.run(asks(10), deadline=deadline - time.time())
    assert len(stalling.batches.batches) == 1  # adopted, not sent again
    assert [answered_via(o) for o in outcomes] == ["batch"] * 4 + ["live"] * 6
    assert stalling.stats().requests == 6 and auto.twice == 0
    rows = list(journal.latest_calls(run_id))
    totals = path_totals(((r.outcome, r.cost) for r in rows), deadline, time.time())
    assert totals.lines == {"batch": 4, "live": 6} and totals.met
    assert totals.cost["batch"] * 2 == pytest.approx(totals.all_live - totals.cost["live"])


async def test_lines_the_batch_expires_go_live_and_the_rest_stay_at_batch_price(
    start_simulator: StartSimulator,
) -> None:
    """A batch that ends with expired lines: those go live at once, the others are kept."""
    timing = BatchTiming(speed=1.0, validate=0.05, duration=0.3, finalize=0.05, expire_rate=0.3)
    simulator = await start_simulator(batch=timing)
    async with OpenAIModel(api_key="t", base_url=simulator.base_url) as model:
        engine, auto = auto_engine(model, 20.0)
        outcomes = await engine.run(asks(20), deadline=20.0)
    paths = [answered_via(o) for o in outcomes]
    assert all(o.ok for o in outcomes) and auto.switch is None and auto.twice == 0
    assert 0 < paths.count("live") < 20 and paths.count("live") == simulator.stats().requests
    expired = [o for o in outcomes if answered_via(o) == "live"]
    assert all(o.attempts[0].error["code"] == "batch_expired" for o in expired)  # type: ignore[index]


def test_a_stalled_simulated_batch_waits_for_a_cancel_and_keeps_what_it_ran() -> None:
    """stall_at: the batch runs 40 % of its lines and no more, until a cancel ends it."""
    clock = SteppingClock(0.0)
    service = BatchService(
        lambda api, body: Reply(body=b'{"ok": true}'),
        BatchTiming(speed=1.0, validate=0.0, duration=1.0, finalize=0.0, stall_at=0.4),
        clock=clock,
    )
    lines = b"".join(
        json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/responses",
                    "body": {"input": f"q{i}"}}).encode() + b"\n"
        for i in range(10)
    )  # fmt: skip
    file_id = service.upload("in.jsonl", "batch", lines)["id"]
    made = service.create({"input_file_id": file_id, "endpoint": "/v1/responses",
                           "completion_window": "24h"})  # fmt: skip
    clock.now = 100.0
    seen = service.retrieve(made["id"])
    assert seen["status"] == "in_progress" and seen["request_counts"]["completed"] == 4
    service.cancel(made["id"])
    ended = service.retrieve(made["id"])
    assert ended["status"] == "cancelled"
    assert ended["request_counts"] == {"total": 10, "completed": 4, "failed": 6}


def test_the_journals_earlier_batches_give_the_forecast_its_batch_pace(journal: Journal) -> None:
    """Two batches of 50 lines that took 10 s each: 5 lines/s, so 100 lines fit a 200 s deadline."""
    clock = SteppingClock(0.0)
    ledger = JournalLedger(journal, journal.start_run("batch", "t", {}, endpoint="sim"),
                           clock=clock)  # fmt: skip
    for n in range(2):
        job = ledger.uploaded(f"file-{n}", "/v1/responses", [(i, "k") for i in range(50)])
        job = ledger.submitted(job, f"batch-{n}")
        clock.now += 10.0
        ledger.seen(job, "completed")
        ledger.closed(job, "collected")
    pace = recent_pace(journal)
    assert pace is not None and pace[0] == pytest.approx(5.0) and pace[1] == 2
    plan = forecast(100, 200.0, LIVE, batch_seconds=100 / 5.0, basis="the journal's")
    assert plan.batch_lines == 100 and "the journal's" in plan.lines()[1]
    assert forecast(100, 200.0, LIVE).batch_lines < 100  # the 24 h window, without it


class NoBatches:
    """A Batch API that refuses every upload (a server without one)."""

    async def upload(self, filename: str, data: bytes) -> str:
        raise BadRequest("no batches here", status_code=404)

    async def create(self, input_file_id: str, endpoint: str, metadata: Any = None) -> Any:
        raise AssertionError("never reached")

    async def retrieve(self, batch_id: str) -> Any:
        raise AssertionError("never reached")

    async def cancel(self, batch_id: str) -> Any:
        raise AssertionError("never reached")

    async def download(self, file_id: str) -> bytes:
        raise AssertionError("never reached")

    async def find(self, input_file_id: str) -> Any:
        return None


async def test_a_batch_that_cannot_be_made_sends_its_lines_live(simulator: Simulator) -> None:
    """The upload refused: every line goes live at once, the deadline first; none is lost."""
    async with OpenAIModel(api_key="t", base_url=simulator.base_url) as model:
        engine = Engine(model)
        engine.dispatch = Auto(NoBatches(), engine.live, deadline=time.time() + 20, latency=0.2)
        outcomes = await engine.run(asks(5), deadline=20.0)
    assert [answered_via(o) for o in outcomes] == ["live"] * 5
    assert all(o.ok and o.attempts[0].via == "batch" for o in outcomes)  # the refused batch
