"""Batch files: the two line formats, bad lines, output as calls settle, and flat memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from fanwise import Engine, Request, RetryPolicy
from fanwise.batch import LineError, output_line, parse_line, run_batch
from fanwise.calls import CallOutcome
from fanwise.models.base import Completion, Endpoint
from fanwise.models.settings import ModelSettings
from fanwise.outcome import Attempt, BadRequest, CallError, CallTimeout, Fulfilled, Rejected
from tests.scripted import Reply, ScriptedModel

DEFAULTS = ModelSettings(model="gpt-5-nano", reasoning_effort="low")


def line(data: Any) -> str:
    return json.dumps(data)


def test_a_responses_batch_line_keeps_its_whole_body() -> None:
    """custom_id, url and the body (input items, reasoning, metadata) come through unchanged."""
    body = {
        "model": "gpt-5-mini",
        "input": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "input_text", "text": "Why is the sky blue?"}]},
        ],
        "reasoning": {"effort": "minimal"},
        "max_output_tokens": 200,
        "metadata": {"kept": "yes"},
    }
    item = parse_line(
        line({"custom_id": "r1", "method": "POST", "url": "/v1/responses", "body": body}),
        1,
        DEFAULTS,
    )
    assert item.custom_id == "r1"
    assert item.request == Request(Endpoint.RESPONSES, body)
    assert (item.request.prompt, item.request.instructions) == ("Why is the sky blue?", "Be brief.")


def test_a_body_without_a_model_gets_the_flags_model_and_nothing_else() -> None:
    """fanwise adds only what is left out: the model; every other field stays as written."""
    body = {"messages": [{"role": "user", "content": "Hi"}], "seed": 7}
    item = parse_line(
        line({"custom_id": "c", "method": "POST", "url": "/v1/chat/completions", "body": body}),
        3,
        DEFAULTS,
    )
    assert item.request == Request(Endpoint.CHAT, {**body, "model": "gpt-5-nano"})


def test_a_plain_line_takes_system_or_the_instructions_flag() -> None:
    """ "system" (or "instructions") is the line's system text; --instructions fills the rest."""
    own = parse_line(line({"prompt": "Hi", "system": "Be brief."}), 1, DEFAULTS, "Flag.")
    other = parse_line(line({"prompt": "Hi"}), 2, DEFAULTS, "Flag.")
    assert (own.request.instructions, other.request.instructions) == ("Be brief.", "Flag.")


def test_a_plain_line_takes_the_commands_settings_for_what_it_leaves_out() -> None:
    """{"prompt": ...} gets the flags' model and effort and a custom_id from its line number."""
    item = parse_line(line({"prompt": "Hello"}), 7, DEFAULTS)
    assert item.custom_id == "line-7"
    assert item.request == Request.text("Hello", model="gpt-5-nano", reasoning_effort="low")
    mine = parse_line(line({"prompt": "Hi", "model": "o3", "custom_id": "x"}), 8, DEFAULTS)
    assert (mine.custom_id, mine.request.model) == ("x", "o3")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"prompt": ', "not valid JSON"),
        (b'{"prompt": "caf\xff"}', r"not UTF-8 text \(byte 0xff at column 16\)"),
        ("[1, 2]", "expected a JSON object"),
        ('{"question": "x"}', "OpenAI batch format"),
        ('{"prompt": ""}', "prompt must be a non-empty string"),
        ('{"prompt": "x", "tools": []}', "field 'tools' is not one of a plain line's"),
        ('{"method": "POST", "url": "/v1/responses", "body": {}}', "custom_id is missing"),
        ('{"custom_id": 3, "url": "/v1/responses", "body": {}}', "custom_id must be a string"),
        ('{"custom_id": "a", "method": "POST", "url": "/v1/files", "body": {}}', "url must be"),
        ('{"custom_id": "a", "method": "GET", "url": "/v1/responses"}', 'must be "POST"'),
        ('{"prompt": "x", "method": "GET"}', 'method must be "POST"'),
        ('{"custom_id": "a", "url": "/v1/responses", "body": {}}', 'method must be "POST"'),
        ('{"custom_id": "a", "method": "POST", "url": "/v1/responses", "body": []}', "body must"),
        ('{"prompt": "x", "max_output_tokens": 0}', "positive whole number"),
        (
            '{"custom_id": "a", "method": "POST", "url": "/v1/responses", '
            '"body": {"stream": true}}',
            "body.stream must not be true",
        ),
    ],
)
def test_a_bad_line_says_which_line_and_what_is_wrong(text: str | bytes, message: str) -> None:
    """Every kind of bad line is a LineError naming its line number and the problem."""
    with pytest.raises(LineError, match=message) as info:
        parse_line(text, 42, DEFAULTS)
    assert str(info.value).startswith("line 42: ")


async def test_output_lines_are_written_as_calls_settle_and_bad_lines_do_not_stop_others() -> None:
    """Each result is written when its call settles; bad lines get an error line; failures too."""
    model = ScriptedModel()
    model.enqueue("slow", Reply(delay=0.05))
    model.enqueue("broken", Reply(error=BadRequest("no", status_code=400)))
    model.enqueue("lost", Reply(error=BadRequest("gone", code="x")))
    written: list[dict[str, Any]] = []
    lines = [
        line({"prompt": "slow", "custom_id": "s"}),
        "not json",
        line({"prompt": "fast", "custom_id": "f"}),
        "",
        line({"prompt": "broken", "custom_id": "b"}),
        line({"prompt": "fast", "custom_id": "f"}),
    ]
    bad: list[LineError] = []
    summary = await run_batch(
        lines,
        Engine(model, concurrency=4, retry=RetryPolicy(0)),
        lambda text: written.append(json.loads(text)),
        defaults=DEFAULTS,
        on_bad_line=bad.append,
    )
    assert [r["custom_id"] for r in written] == [None, "f", "f", "b", "s"], "completion order"
    assert written[0]["error"]["code"] == "invalid_line" and written[0]["fanwise"]["line"] == 2
    assert [e.line for e in bad] == [2, 6], "the repeated custom_id, by its line"
    assert "duplicate custom_id 'f'" in written[1]["error"]["message"]
    fast = written[2]
    assert set(fast) == {"id", "custom_id", "response", "error", "fanwise"}
    assert fast["response"]["body"]["output"][0]["content"][0]["text"] == "answer to fast"
    assert fast["fanwise"]["line"] == 3 and fast["error"] is None
    assert written[3]["response"] is None
    assert written[3]["error"] == {"code": "bad_request", "message": "no"}
    assert (summary.fulfilled, summary.rejected, summary.bad_lines) == (2, 1, 2)


async def test_a_long_file_is_streamed_never_held() -> None:
    """Over 20,000 lines, at most concurrency + 1 lines are ever read but not yet written."""
    concurrency = 8
    read = written = 0
    most_pending = 0

    def source() -> Iterator[str]:
        nonlocal read, most_pending
        for n in range(20_000):
            read += 1
            most_pending = max(most_pending, read - written)
            yield line({"prompt": f"question {n}"})

    def write(record: str) -> None:
        nonlocal written
        written += 1

    engine = Engine(ScriptedModel(), concurrency=concurrency)
    summary = await run_batch(source(), engine, write, defaults=DEFAULTS)
    assert summary.fulfilled == written == 20_000
    assert most_pending <= concurrency + 1


def _reference_line(
    custom_id: str, outcome: CallOutcome, line: int | None, key: str, cost: float | None
) -> dict[str, Any]:
    """What an output line holds, built with json's own types (the hand-written text must match)."""
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    if isinstance(outcome, Fulfilled):
        body = json.loads(outcome.value.raw)
        response = {"status_code": 200, "request_id": outcome.value.request_id, "body": body}
    elif isinstance(outcome.error, CallError) and outcome.error.body:
        body = json.loads(outcome.error.body)
        request_id = outcome.error.headers.get("x-request-id")
        response = {"status_code": outcome.error.status_code, "request_id": request_id}
        response["body"] = body
    else:
        error = {"code": outcome.kind.value, "message": str(outcome.error)}
    return {
        "id": f"batch_req_{key or line}",
        "custom_id": custom_id,
        "response": response,
        "error": error,
        "fanwise": {
            "line": line,
            "attempts": len(outcome.attempts),
            "latency": round(outcome.latency, 4),
            "service_time": round(outcome.service_time, 4),
            "queued": round(outcome.queue_time, 4),
            "cached": isinstance(outcome, Fulfilled) and outcome.cached,
            "truncated": isinstance(outcome, Fulfilled) and outcome.value.truncated,
            "cost_usd": None if cost is None else round(cost, 8),
        },
    }


ATTEMPTS = (Attempt(1, 0.0, 0.123456789, queued=0.0100004), Attempt(2, 0.2, 1e-7))
OUTPUT_CASES: list[tuple[str, CallOutcome, int | None, str, float | None]] = [
    (
        'q"1\\\n€',
        Fulfilled(
            Completion(
                "hi", raw=b'{"id":"resp_1","output_text":"h\\u00e9 \\"x\\""}', request_id="req_9"
            ),
            latency=0.123456789,
            attempts=ATTEMPTS,
            cached=True,
        ),
        3,
        "abc",
        1.234567891e-5,
    ),
    (
        "r2",
        Rejected(
            BadRequest(
                "no",
                status_code=400,
                body=b'{"error": {"message": "no"}}',
                headers={"x-request-id": "req_\u00e9"},
            ),
            latency=2.0,
            attempts=ATTEMPTS[:1],
        ),
        None,
        "",
        None,
    ),
    ("r3", Rejected(CallTimeout("took too long \u2014 gave up"), latency=float("inf")), 7, "", 0.0),
]


@pytest.mark.parametrize(("custom_id", "outcome", "number", "key", "cost"), OUTPUT_CASES)
def test_an_output_line_is_the_json_its_parts_make(
    custom_id: str, outcome: CallOutcome, number: int | None, key: str, cost: float | None
) -> None:
    """The hand-built output line parses to exactly what json would have written, on one line."""
    text = output_line(custom_id, outcome, line=number, key=key, cost=cost)
    assert "\n" not in text
    assert json.loads(text) == _reference_line(custom_id, outcome, number, key, cost)


@pytest.mark.parametrize(("bad", "said"), [(1, ", 1 bad line ·"), (2, ", 2 bad lines ·")])
def test_the_batch_summary_counts_bad_lines_in_words(bad: int, said: str) -> None:
    """One bad line is "1 bad line", more are "lines"."""
    from types import SimpleNamespace
    from typing import cast

    from fanwise.batch import BatchSummary
    from fanwise.cli.batch import summary_line
    from fanwise.cli.session import Session

    session = cast(Session, SimpleNamespace(cost=0.0, cost_shown=0.0, run_id=None))
    assert said in summary_line(BatchSummary(fulfilled=1, bad_lines=bad), session)
