"""The big fan-out with no synthesis: one request per input line, one output line per request.

Input lines are read lazily, as the engine has room for another call, and each output line is
written the moment its call settles, so memory stays flat however long the file is: at any time
only the calls in flight (``concurrency`` of them) are held. Output lines are OpenAI's batch
output lines (the server's whole body under ``response.body``), keyed by ``custom_id``, in
completion order, with fanwise's own figures under ``fanwise``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

from fanwise.batch.lines import LineError, LineReader
from fanwise.calls import SettledRecord
from fanwise.dispatch.base import Warm
from fanwise.engine import Call, CallOutcome, Engine
from fanwise.events import PhaseFinished, PhaseStarted, RunStarted
from fanwise.jsonspans import LINE_ID
from fanwise.models.base import Completion, Request, Usage
from fanwise.models.bodies import made_body
from fanwise.models.requests import with_cache_hints
from fanwise.models.settings import ModelSettings
from fanwise.outcome import CallError, ErrorKind, Fulfilled, Rejected, error_to_dict
from fanwise.schemas import body_schema
from fanwise.structured import outcome_usage

Write = Callable[[str], None]
"""Receives each output line (JSON text, without its newline)."""
Cost = Callable[[Call, CallOutcome], float | None]


@dataclass(slots=True)
class BatchSummary:
    """What a batch did: counts by outcome, the bad lines, tokens and wall time; the calls'
    time with the server (``service_time``) apart from fanwise's limiter's hold
    (``queue_time``)."""

    fulfilled: int = 0
    rejected: int = 0
    bad_lines: int = 0
    cached: int = 0
    truncated: int = 0  # fulfilled answers cut at their output-token cap
    refused_auth: int = 0  # rejected for the key (401/403): all of them is a usage error
    not_sent: int = 0  # never sent: the run halted (its output or journal failed); not failures
    usage: Usage = field(default_factory=Usage)
    by_model: dict[str, Usage] = field(default_factory=dict)
    """The usage of the answers sent now, by model (a few models, however many lines): what the
    prompt cache saved is priced per model."""
    wall_time: float = 0.0
    service_time: float = 0.0
    queue_time: float = 0.0

    @property
    def requests(self) -> int:
        return self.fulfilled + self.rejected

    @property
    def status(self) -> str:
        """complete, partial (a failed request or a bad line), or no_result (nothing answered)."""
        if self.fulfilled == 0:
            return "no_result"
        return "partial" if self.rejected or self.bad_lines else "complete"

    def to_dict(self) -> dict[str, Any]:
        return {
            "fulfilled": self.fulfilled,
            "rejected": self.rejected,
            "bad_lines": self.bad_lines,
            "cached": self.cached,
            "truncated": self.truncated,
            "usage": self.usage.to_dict(),
            "wall_time": round(self.wall_time, 4),
            "service_time": round(self.service_time, 4),
            "queue_time": round(self.queue_time, 4),
        } | ({"not_sent": self.not_sent} if self.not_sent else {})


def output_line(
    custom_id: str,
    outcome: CallOutcome,
    *,
    line: int | None,
    key: str = "",
    cost: float | None = None,
) -> str:
    """One output line, in OpenAI's batch output shape, plus fanwise's own figures.

    ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``: the
    body is the server's own, whole (an HTTP error's too); a failure with no HTTP answer
    (network, timeout, cancelled) has ``response`` null and ``error`` with its kind as code.
    The body goes in as the bytes that came: it is parsed again only if it spans lines.
    """
    body: bytes | None = None
    status, request_id, error, line_id = 200, None, None, None
    if isinstance(outcome, Fulfilled):
        body, request_id = outcome.value.raw or _made(outcome.value), outcome.value.request_id
        line_id = outcome.value.headers.get(LINE_ID)
    else:
        failure = outcome.error
        if isinstance(failure, CallError) and failure.status_code and failure.body:
            body, status = failure.body, failure.status_code
            request_id = failure.headers.get("x-request-id")
            line_id = failure.headers.get(LINE_ID)
        else:
            details = error_to_dict(failure)
            error = {"code": details["kind"], "message": details["message"]}
    tail = _fanwise_json(outcome, line, cost)
    head = (
        f'{{"id":{_string(line_id or f"batch_req_{key or line}")},"custom_id":{_string(custom_id)}'
    )
    if body is None:
        return f'{head},"response":null,"error":{_dumps(error)},"fanwise":{tail}}}'
    text = _one_line(body)
    meta = f'"status_code":{status},"request_id":{_nullable(request_id)}'
    return f'{head},"response":{{{meta},"body":{text}}},"error":null,"fanwise":{tail}}}'


def _fanwise_json(outcome: CallOutcome, line: int | None, cost: float | None) -> str:
    """fanwise's own figures of an output line, as JSON written by hand: numbers, booleans and
    null only, so no escaping is needed, and ``json.dumps`` of this dict was about 5 % of the
    CLI's CPU per call at N = 10,000 (cProfile). ``tests/test_batch_output.py`` checks the text
    against ``json.dumps`` of the same dict."""
    cached = "true" if isinstance(outcome, Fulfilled) and outcome.cached else "false"
    cut = "true" if isinstance(outcome, Fulfilled) and outcome.value.truncated else "false"
    return (
        f'{{"line":{"null" if line is None else int(line)},'
        f'"attempts":{len(outcome.attempts)},'
        f'"latency":{_number(outcome.latency)},'
        f'"service_time":{_number(outcome.service_time)},'
        f'"queued":{_number(outcome.queue_time)},'
        f'"cached":{cached},'
        f'"truncated":{cut},'
        f'"cost_usd":{"null" if cost is None else _number(cost, 8)}}}'
    )


def _number(value: float, digits: int = 4) -> str:
    """A rounded float as ``json.dumps`` writes it (``repr``; non-finite as JSON's extensions)."""
    rounded = round(value, digits)
    return repr(rounded) if math.isfinite(rounded) else json.dumps(rounded)


def _nullable(text: str | None) -> str:
    return "null" if text is None else _string(text)


_string = encode_basestring
"""A JSON string (quotes and escapes) for any text, UTF-8 kept as it is: the C encoder's."""


def output_record(
    custom_id: str, outcome: CallOutcome, *, line: int, key: str = "", cost: float | None = None
) -> dict[str, Any]:
    """``output_line`` as a dict (for tests and callers that want the record itself)."""
    record: dict[str, Any] = json.loads(
        output_line(custom_id, outcome, line=line, key=key, cost=cost)
    )
    return record


def _made(completion: Completion) -> bytes:
    """The API's body for a completion that kept none (a model written in Python)."""
    rid = completion.response_id or "fanwise"
    body = made_body(completion.endpoint, completion.text, completion.usage, completion.model, rid)
    if completion.response_id is not None and "id" in body:
        body["id"] = completion.response_id
    return _dumps(body).encode()


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _one_line(body: bytes) -> str:
    """A JSON body as one line of text; one that is not valid JSON goes in as a string."""
    try:
        text = body.decode()
        if "\n" in text or "\r" in text:
            return _dumps(json.loads(text))
        return text if text.strip() else _dumps(text)
    except ValueError:
        return _dumps(body.decode(errors="replace"))


def bad_line_record(error: LineError) -> dict[str, Any]:
    """The output line of an input line that could not be sent."""
    return {
        "id": None,
        "custom_id": error.custom_id,
        "response": None,
        "error": {"code": "invalid_line", "message": str(error)},
        "fanwise": {"line": error.line},
    }


async def run_batch(
    lines: Iterable[bytes | str],
    engine: Engine,
    write: Write,
    *,
    defaults: ModelSettings,
    instructions: str | None = None,
    total: int = 0,
    on_bad_line: Callable[[LineError], None] | None = None,
    cost: Cost | None = None,
    deadline: float | None = None,
    fail_fast: bool = False,
    name: str = "",
    validate: bool = False,
    line_of: dict[int, int] | None = None,
    cache_prefix: bool = False,
) -> BatchSummary:
    """Send every good line through ``engine``; ``write`` each result as it settles.

    ``name`` (the input file's, say) names the run for observers such as telemetry. With
    ``validate``, each answer is checked against the schema its own line asks for
    (``response_format`` or ``text.format``): one that breaks it is ``invalid_response``, and
    retried as any retryable failure is. ``line_of`` is filled with the engine index of each
    call in flight and its input line (blank and bad lines take no index): pass the dict a
    ``JournalStore`` reads as its ``lines`` to journal each call's line. ``cache_prefix``
    marks each body's system prompt for the provider's prompt cache and sends the first line
    alone, the rest once it has settled (docs/caching.md).
    """
    work = _send(
        lines,
        engine,
        write,
        defaults,
        instructions,
        total,
        on_bad_line,
        cost,
        deadline,
        fail_fast,
        validate,
        {} if line_of is None else line_of,
        cache_prefix,
    )
    started = RunStarted("batch", name, name, engine.now())
    return await engine.announced(started, work, lambda summary: (summary.status, None))


async def _send(
    lines: Iterable[bytes | str],
    engine: Engine,
    write: Write,
    defaults: ModelSettings,
    instructions: str | None,
    total: int,
    on_bad_line: Callable[[LineError], None] | None,
    cost: Cost | None,
    deadline: float | None,
    fail_fast: bool,
    validate: bool,
    line_of: dict[int, int],  # engine index -> input line, for the calls in flight only
    cache_prefix: bool,
) -> BatchSummary:
    summary = BatchSummary()
    reader = LineReader(defaults, instructions)

    def calls() -> Iterator[Call]:
        index = 0
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                item = reader.read(text, number)
            except LineError as error:
                summary.bad_lines += 1
                write(_dumps(bad_line_record(error)))
                if on_bad_line is not None:
                    on_bad_line(error)
                continue
            line_of[index] = number
            index += 1
            request = item.request
            if cache_prefix:
                body = with_cache_hints(request.endpoint.value, request.body)
                request = Request(request.endpoint, body)
            schema = body_schema(request.endpoint, request.body) if validate else None
            yield Call(request, label=item.custom_id, schema=schema)

    def settled(record: SettledRecord) -> None:
        index, call, outcome = record.index, record.call, record.outcome
        price = cost(call, outcome) if cost is not None else record.cost
        number = line_of.pop(index)
        write(output_line(call.label, outcome, line=number, key=call.key, cost=price))
        summary.service_time += outcome.service_time
        summary.queue_time += outcome.queue_time
        unsent = isinstance(outcome, Rejected) and outcome.error is engine.halted
        if unsent and not outcome.attempts:  # the halt kept it from being sent: a resume sends it
            summary.not_sent += 1
            return
        if isinstance(outcome, Rejected):
            summary.rejected += 1
            summary.refused_auth += outcome.kind is ErrorKind.AUTH
            summary.usage += outcome_usage(outcome)  # a refusal, an answer that broke its schema
            return
        summary.fulfilled += 1
        summary.truncated += outcome.value.truncated
        if outcome.cached:
            summary.cached += 1
        else:
            usage = outcome.value.usage
            summary.usage += usage
            model = outcome.value.model or call.request.model
            summary.by_model[model] = summary.by_model.get(model, Usage()) + usage

    started = engine.now()
    engine.emit(PhaseStarted("batch", total, started))
    warm = Warm.FIRST_ANSWER if cache_prefix else Warm.OFF
    await engine.run(
        calls(),
        keep=False,
        on_settled=settled,
        deadline=deadline,
        fail_fast=fail_fast,
        warm=warm,
    )
    summary.wall_time = engine.now() - started
    engine.emit(PhaseFinished("batch", engine.now()))
    return summary
