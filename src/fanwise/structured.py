"""A call's schema at work in the engine: each answer checked, and the next attempt worded.

An answer is checked the moment it arrives. A refusal is ``Refused`` (final, never retried);
text that is not JSON or breaks the schema is ``SchemaMismatch``, an ``InvalidResponse``, so the
retry policy retries it within the run's retry budget, unless the answer was cut at its token
cap (``finish_reason`` ``length``, ``max_output_tokens``, ``max_tokens``): then it is
``Truncated``, final, for asking again at the same cap (repaired or not) is cut at the same
place and only costs more tokens. All keep the tokens the attempt cost,
and a fulfilled answer's usage adds those of the attempts before it, so usage and cost count
every attempt. The next attempt is the repaired request (the bad answer and the error
appended, instructor's way) unless ``repair`` is off; the call's key stays the original's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fanwise.models.base import Completion, Request, Usage
from fanwise.outcome import (
    Attempt,
    CallError,
    Fulfilled,
    InvalidResponse,
    Refused,
    Rejected,
    Truncated,
)
from fanwise.schemas import Schema, SchemaViolation, repair_body
from fanwise.schemas_anthropic import FALLBACK_TOOL

if TYPE_CHECKING:
    from fanwise.calls import CallOutcome


class SchemaMismatch(InvalidResponse):
    """An answer that is not JSON or breaks its schema; ``answer`` is its text, for the repair."""

    def __init__(self, violation: str, *, answer: str, usage: Usage) -> None:
        super().__init__(f"the answer broke its schema: {violation}", usage=usage.to_dict())
        self.violation = violation
        self.answer = answer


def refusal(completion: Completion) -> Refused | None:
    """The ``Refused`` error a refusal is (Chat's ``refusal``, a Responses refusal part)."""
    if completion.refusal is None or completion.text:
        return None
    return Refused(f"the model refused: {completion.refusal}", usage=completion.usage.to_dict())


RAISE_CAP = "raise max_output_tokens"
"""The hint a cut structured answer ends with; the CLI names its flag instead (``ui.words``)."""


def truncated(completion: Completion, cap: int | None, violation: str) -> Truncated:
    """The final error of a structured answer its token cap cut short: no repair can help."""
    where = f"the {cap:,}-token cap" if cap is not None else "the model's output-token limit"
    return Truncated(
        f"answer cut at {where} before its JSON was complete; {RAISE_CAP} (finish reason "
        f"{completion.finish_reason}; {violation})",
        code=completion.finish_reason,
        usage=completion.usage.to_dict(),
    )


def accept(
    completion: Completion, schema: Schema | None, spent: Usage, cap: int | None = None
) -> Completion:
    """The answer with its parsed value and every attempt's usage; raises what it is if not.

    ``cap`` is the request's output-token cap, named when a cut answer cannot be parsed."""
    refused = refusal(completion)
    if refused is not None:
        raise refused
    parsed = None
    if schema is not None:
        text = answer_text(completion, schema)
        if text != completion.text:  # a forced tool's input is the answer (Anthropic's fallback)
            completion = dataclasses.replace(completion, text=text)
        try:
            parsed = schema.parse(text)
        except SchemaViolation as error:
            if completion.truncated:
                raise truncated(completion, cap, str(error)) from None
            raise SchemaMismatch(str(error), answer=text, usage=completion.usage) from None
    if parsed is None and not spent.total_tokens:
        return completion
    return dataclasses.replace(completion, parsed=parsed, usage=completion.usage + spent)


def answer_text(completion: Completion, schema: Schema) -> str:
    """The text that holds a structured answer: the answer's text, or, when it has none, the
    input of the tool call named as the schema (the forced tool of Anthropic's fallback)."""
    if completion.text.strip():
        return completion.text
    for call in completion.tool_calls:
        if call.name in (schema.name, FALLBACK_TOOL):
            return call.arguments
    return completion.text


def checked(
    result: Completion | CallError, schema: Schema | None, spent: Usage, cap: int | None = None
) -> Any:
    """A batch line's result checked as a live answer is: ``Completion | CallError``."""
    if not isinstance(result, Completion):
        return result
    try:
        return accept(result, schema, spent, cap)
    except CallError as error:
        return error


def reparse(completion: Completion, schema: Schema | None) -> Completion:
    """A journaled answer with its parsed value again (a pydantic instance is not journaled)."""
    if schema is None:
        return completion
    try:
        return dataclasses.replace(completion, parsed=schema.parse(completion.text))
    except SchemaViolation:
        return completion


def cost_of(error: BaseException) -> Usage:
    """The tokens a failed attempt still cost (zero for a failure that had no answer)."""
    if isinstance(error, CallError) and error.usage:
        return Usage.from_dict(error.usage)
    return Usage()


def next_request(request: Request, error: BaseException, *, repair: bool) -> Request:
    """What the next attempt sends: the repaired request after a schema break, else the same."""
    if not repair or not isinstance(error, SchemaMismatch):
        return request
    body = repair_body(request.endpoint.value, request.body, error.answer, error.violation)
    return Request(request.endpoint, body)


def attempts_usage(attempts: Iterable[Attempt]) -> Usage:
    """What the failed attempts of a call cost, read back from their errors."""
    total = Usage()
    for attempt in attempts:
        if attempt.error and isinstance(attempt.error.get("usage"), dict):
            total += Usage.from_dict(attempt.error["usage"])
    return total


def outcome_usage(outcome: CallOutcome) -> Usage:
    """Every token a call cost: a fulfilled answer's usage counts its failed attempts already."""
    if isinstance(outcome, Fulfilled):
        return outcome.value.usage
    assert isinstance(outcome, Rejected)
    return attempts_usage(outcome.attempts)


def jsonable(value: Any) -> Any:
    """A parsed value as JSON data: a pydantic instance dumped, anything else as it is."""
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


__all__ = [
    "SchemaMismatch",
    "accept",
    "answer_text",
    "attempts_usage",
    "checked",
    "cost_of",
    "jsonable",
    "next_request",
    "outcome_usage",
    "refusal",
    "reparse",
    "truncated",
]
