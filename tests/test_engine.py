"""The engine: retries by the policy, attempts recorded, events emitted, fail-fast and deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from fanwise import Call, Engine, ErrorKind, Fulfilled, Rejected, Request, RetryPolicy
from fanwise.events import CallRetrying, CallSettled, CallStarted, Event
from fanwise.limits import Permit
from fanwise.outcome import BadRequest, CallTimeout, RateLimited, ServerError
from fanwise.retry import RetryBudget
from tests.scripted import Reply, ScriptedModel


class Waits:
    """A sleep that records every wait instead of waiting (stamina's test mode)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def calls(*prompts: str) -> list[Call]:
    return [Call(Request.text(p)) for p in prompts]


async def test_retryable_errors_are_retried_and_every_attempt_is_recorded() -> None:
    """A 429 then a 500 then success: three attempts, the Retry-After wait honoured exactly."""
    model = ScriptedModel()
    model.enqueue(
        "q",
        Reply(error=RateLimited("slow down", status_code=429, retry_after=1.25)),
        Reply(error=ServerError("oops", status_code=500)),
        Reply("fine"),
    )
    sleep = Waits()
    engine = Engine(model, sleep=sleep, retry=RetryPolicy(retries=3, base_delay=0.5))
    [outcome] = await engine.run(calls("q"))
    assert isinstance(outcome, Fulfilled) and outcome.value.text == "fine"
    assert [a.number for a in outcome.attempts] == [1, 2, 3]
    assert [a.error["kind"] if a.error else None for a in outcome.attempts] == [
        "rate_limited",
        "server",
        None,
    ]
    assert sleep.waits[0] == 1.25, "Retry-After must be honoured exactly"
    assert 0 <= sleep.waits[1] <= 1.0, "second backoff: full jitter within base * 2"
    assert [a.waited for a in outcome.attempts] == [0.0, *sleep.waits]


async def test_final_errors_are_never_retried() -> None:
    """A 400 (context length) fails at once: one attempt, no wait."""
    model = ScriptedModel()
    model.enqueue("q", Reply(error=BadRequest("context_length_exceeded", status_code=400)))
    sleep = Waits()
    [outcome] = await Engine(model, sleep=sleep).run(calls("q"))
    assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.BAD_REQUEST
    assert len(outcome.attempts) == 1 and sleep.waits == [] and model.attempts("q") == 1


async def test_retries_stop_at_the_attempt_budget() -> None:
    """With --retries 2 a call that always fails makes exactly three attempts."""
    model = ScriptedModel()
    model.enqueue("q", *[Reply(error=ServerError("down", status_code=503))] * 5)
    [outcome] = await Engine(model, sleep=Waits(), retry=RetryPolicy(retries=2)).run(calls("q"))
    assert isinstance(outcome, Rejected) and model.attempts("q") == 3 and len(outcome.attempts) == 3


async def test_a_run_wide_retry_budget_caps_the_bill() -> None:
    """A retry budget of 1 lets one call retry once; the rest give up after their first try."""
    model = ScriptedModel()
    for p in ("a", "b", "c"):
        model.enqueue(p, *[Reply(error=ServerError("down", status_code=500))] * 5)
    engine = Engine(model, sleep=Waits(), retry_budget=RetryBudget(1), concurrency=1)
    await engine.run(calls("a", "b", "c"))
    assert len(model.history) == 4


async def test_attempt_timeout_is_a_retryable_timeout() -> None:
    """An attempt slower than --timeout is cut, classified timeout, and retried."""
    model = ScriptedModel()
    model.enqueue("q", Reply(delay=5), Reply("second try"))
    [outcome] = await Engine(model, timeout=0.05, sleep=Waits()).run(calls("q"))
    assert isinstance(outcome, Fulfilled) and outcome.value.text == "second try"
    first = outcome.attempts[0]
    assert first.error is not None and first.error["kind"] == "timeout"
    assert first.error["type"] == CallTimeout.__name__


async def test_concurrency_caps_requests_in_flight() -> None:
    """With concurrency 2, the model never sees more than two requests at once."""
    model = ScriptedModel()
    for i in range(8):
        model.enqueue(f"q{i}", Reply(delay=0.01))
    await Engine(model, concurrency=2).run(calls(*(f"q{i}" for i in range(8))))
    assert model.peak == 2


async def test_events_tell_the_story_of_each_call() -> None:
    """Started, retrying and settled events arrive in order with the call's label."""
    model = ScriptedModel()
    model.enqueue("q", Reply(error=ServerError("x", status_code=500)), Reply("y"))
    events: list[Event] = []
    await Engine(model, observer=events.append, sleep=Waits()).run(
        [Call(Request.text("q"), label="Q")]
    )
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["CallStarted", "CallRetrying", "CallStarted", "CallSettled"]
    assert all(getattr(e, "label", None) == "Q" for e in events)
    assert isinstance(events[1], CallRetrying) and events[1].error["kind"] == "server"
    assert isinstance(events[2], CallStarted) and events[2].attempt == 2
    assert isinstance(events[3], CallSettled) and events[3].outcome.ok


async def test_fail_fast_cancels_siblings_and_keeps_finished_calls() -> None:
    """In fail-fast mode a final failure cancels the running calls; finished ones are kept."""
    model = ScriptedModel()
    model.enqueue("done", Reply("kept"))
    model.enqueue("slow", Reply(delay=5))
    model.enqueue("bad", Reply(delay=0.02, error=BadRequest("nope", status_code=400)))
    outcomes = await Engine(model).run(calls("done", "slow", "bad"), fail_fast=True)
    assert [o.status for o in outcomes] == ["fulfilled", "rejected", "rejected"]
    slow = outcomes[1]
    assert isinstance(slow, Rejected) and slow.kind is ErrorKind.CANCELLED
    assert len(slow.attempts) == 1 and slow.attempts[0].error is not None
    assert model.in_flight == 0, "the cancelled request must have stopped"


async def test_deadline_turns_calls_in_flight_into_timeouts_with_their_attempt() -> None:
    """The phase deadline ends the run: the hung call is a timeout that records its attempt."""
    model = ScriptedModel()
    model.enqueue("hang", Reply(delay=5))
    outcomes = await Engine(model).run(calls("quick", "hang"), deadline=0.05)
    quick, hang = outcomes
    assert isinstance(quick, Fulfilled)
    assert isinstance(hang, Rejected) and hang.kind is ErrorKind.TIMEOUT
    assert "deadline" in hang.message and len(hang.attempts) == 1
    assert 0.04 <= hang.latency < 1


async def test_unexpected_exceptions_in_a_model_are_kept_not_retried() -> None:
    """A bug in a model (not a CallError) is an 'exception' outcome, tried once."""
    model = ScriptedModel()
    model.enqueue("q", Reply(error=KeyError("bug")))
    [outcome] = await Engine(model, sleep=Waits()).run(calls("q"))
    assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.EXCEPTION
    assert model.attempts("q") == 1


async def test_call_keys_are_stable_and_depend_on_every_setting() -> None:
    """Same request, same key; another model or effort, another key."""
    a = Call(Request.text("q", model="gpt-5"))
    assert a.key == Call(Request.text("q", model="gpt-5")).key
    assert a.key != Call(Request.text("q", model="gpt-4.1")).key
    assert a.key != Call(Request.text("q", reasoning_effort="high")).key
    assert a.label == "q"


def test_bad_engine_settings_are_refused() -> None:
    """Concurrency 0 or a negative timeout is refused when the engine is built."""
    with pytest.raises(ValueError, match="concurrency"):
        Engine(ScriptedModel(), concurrency=0)
    with pytest.raises(ValueError, match="timeout"):
        Engine(ScriptedModel(), timeout=0)


class HoldingLimiter:
    """A limiter that never lets a request go: every attempt waits in its queue."""

    @asynccontextmanager
    async def permit(self, estimated_tokens: int) -> AsyncIterator[Permit]:
        await asyncio.sleep(3600)
        yield  # type: ignore[misc]  # never reached


async def test_a_call_cut_while_held_by_the_limiter_records_the_hold() -> None:
    """At the deadline, the attempt still waiting for the limiter reports its time as queued."""
    engine = Engine(ScriptedModel(), limiter=HoldingLimiter())
    [outcome] = await engine.run(calls("q"), deadline=0.05)
    assert isinstance(outcome, Rejected) and outcome.kind is ErrorKind.TIMEOUT
    [attempt] = outcome.attempts
    assert attempt.queued == pytest.approx(attempt.duration, abs=1e-3) and attempt.queued >= 0.04
