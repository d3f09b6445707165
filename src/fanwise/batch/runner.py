"""The big fan-out with no synthesis: one request per input line, one output line per request.

Input lines are read lazily, as the engine has room for another call, and each output line is
written the moment its call settles, so memory stays flat however long the file is: at any time
only the calls in flight (``concurrency`` of them) are held. Output lines follow OpenAI's batch
output shape, keyed by ``custom_id``, in completion order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fanwise.batch.lines import LineError, parse_line
from fanwise.engine import Call, CallOutcome, Engine
from fanwise.events import PhaseFinished, PhaseStarted
from fanwise.models.base import Usage
from fanwise.outcome import Fulfilled, Rejected, error_to_dict
from fanwise.workflow import ModelSettings

Write = Callable[[dict[str, Any]], None]
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
    usage: Usage = field(default_factory=Usage)
    wall_time: float = 0.0
    service_time: float = 0.0
    queue_time: float = 0.0

    @property
    def requests(self) -> int:
        return self.fulfilled + self.rejected

    def to_dict(self) -> dict[str, Any]:
        return {
            "fulfilled": self.fulfilled,
            "rejected": self.rejected,
            "bad_lines": self.bad_lines,
            "cached": self.cached,
            "usage": self.usage.to_dict(),
            "wall_time": round(self.wall_time, 4),
            "service_time": round(self.service_time, 4),
            "queue_time": round(self.queue_time, 4),
        }


def output_record(
    custom_id: str, outcome: CallOutcome, *, line: int, cost: float | None = None
) -> dict[str, Any]:
    """One output line: ``response`` with a body on success, ``error`` on failure."""
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    if isinstance(outcome, Fulfilled):
        completion = outcome.value
        response = {
            "status_code": 200,
            "body": {
                "id": completion.response_id,
                "model": completion.model,
                "output_text": completion.text,
                "usage": completion.usage.to_dict(),
            },
        }
    else:
        details = error_to_dict(outcome.error)
        error = {"code": details["kind"], "message": details["message"]}
        if "status_code" in details:
            error["status_code"] = details["status_code"]
    return {
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
            "cost_usd": None if cost is None else round(cost, 8),
        },
    }


def bad_line_record(error: LineError) -> dict[str, Any]:
    """The output line of an input line that could not be sent."""
    return {
        "custom_id": error.custom_id,
        "response": None,
        "error": {"code": "invalid_line", "message": str(error)},
        "fanwise": {"line": error.line},
    }


async def run_batch(
    lines: Iterable[str],
    engine: Engine,
    write: Write,
    *,
    defaults: ModelSettings,
    total: int = 0,
    on_bad_line: Callable[[LineError], None] | None = None,
    cost: Cost | None = None,
    deadline: float | None = None,
    fail_fast: bool = False,
) -> BatchSummary:
    """Send every good line through ``engine``; ``write`` each result as it settles."""
    summary = BatchSummary()
    line_of: dict[int, int] = {}  # engine index -> input line, for the calls in flight only

    def calls() -> Iterator[Call]:
        index = 0
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                item = parse_line(text, number, defaults)
            except LineError as error:
                summary.bad_lines += 1
                write(bad_line_record(error))
                if on_bad_line is not None:
                    on_bad_line(error)
                continue
            line_of[index] = number
            index += 1
            yield Call(item.request, label=item.custom_id)

    def settled(index: int, call: Call, outcome: CallOutcome) -> None:
        price = cost(call, outcome) if cost is not None else None
        write(output_record(call.label, outcome, line=line_of.pop(index), cost=price))
        summary.service_time += outcome.service_time
        summary.queue_time += outcome.queue_time
        if isinstance(outcome, Rejected):
            summary.rejected += 1
            return
        summary.fulfilled += 1
        if outcome.cached:
            summary.cached += 1
        else:
            summary.usage += outcome.value.usage

    started = engine.now()
    engine.emit(PhaseStarted("batch", total, started))
    await engine.run(
        calls(), keep=False, on_outcome=settled, deadline=deadline, fail_fast=fail_fast
    )
    summary.wall_time = engine.now() - started
    engine.emit(PhaseFinished("batch", engine.now()))
    return summary
