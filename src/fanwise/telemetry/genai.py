"""What a call span says, in the words of the OpenTelemetry GenAI semantic conventions.

Plain functions from fanwise's own records (``Request``, ``Completion``, ``Attempt``) to attribute
dictionaries: no OpenTelemetry import, so they are cheap to test and to read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from fanwise.models.base import Completion, Request
from fanwise.outcome import Attempt, Fulfilled, Rejected
from fanwise.redact import redact
from fanwise.structured import outcome_usage

OPERATION = "chat"
"""``gen_ai.operation.name`` of every call: the Responses and Chat Completions APIs are chats."""

CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

Attributes = dict[str, str | bool | int | float | list[str]]


def capture_content(environ: Mapping[str, str] = os.environ) -> bool:
    """Prompts and answers go into spans only when the user opts in (they may be private)."""
    return environ.get(CAPTURE_CONTENT, "").strip().lower() == "true"


def provider_name(model_name: str) -> str:
    """``gen_ai.provider.name`` from the ``Model.name`` of fanwise's models (custom ones as is)."""
    if model_name == "offline":
        return "fanwise.offline"
    if model_name.startswith(("openai", "pool of")):
        return "openai"
    return model_name or "unknown"


def span_name(request_model: str | None) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``; the operation alone if unknown."""
    return f"{OPERATION} {request_model}" if request_model else OPERATION


def request_attributes(
    provider: str, index: int, key: str, label: str, request: Request | None, content: bool
) -> Attributes:
    """What is known when the call is sent."""
    attributes: Attributes = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": provider,
        "fanwise.call.index": index,
        "fanwise.call.key": key,
    }
    if request is not None:
        attributes["gen_ai.request.model"] = request.model
        if request.max_output_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_output_tokens
        temperature = request.body.get("temperature")
        if isinstance(temperature, int | float):
            attributes["gen_ai.request.temperature"] = float(temperature)
        if request.reasoning_effort is not None:
            attributes["openai.request.reasoning_effort"] = request.reasoning_effort
    if content:  # a label is often the question itself
        attributes["fanwise.call.label"] = label
        if request is not None:
            messages = [{"role": "user", "parts": [{"type": "text", "content": request.prompt}]}]
            attributes["gen_ai.input.messages"] = json.dumps(messages, ensure_ascii=False)
            if request.instructions:
                instructions = [{"type": "text", "content": request.instructions}]
                attributes["gen_ai.system_instructions"] = json.dumps(
                    instructions, ensure_ascii=False
                )
    return attributes


def outcome_attributes(outcome: Fulfilled[Completion] | Rejected, content: bool) -> Attributes:
    """What is known when the call has settled: the response, or why there is none.

    The usage is every attempt's (``outcome_usage``): a refusal or an answer that broke its
    schema still cost tokens, and the journal and the summary count them.
    """
    attributes: Attributes = {"fanwise.call.attempts": len(outcome.attempts)}
    usage = outcome_usage(outcome)
    if isinstance(outcome, Rejected):
        attributes["error.type"] = outcome.kind.value
        if usage.total_tokens:
            attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
            attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
        return attributes
    completion = outcome.value
    attributes["fanwise.call.cached"] = outcome.cached
    if completion.model:
        attributes["gen_ai.response.model"] = completion.model
    if completion.response_id:
        attributes["gen_ai.response.id"] = completion.response_id
    attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
    attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
    reason = completion.finish_reason
    if reason:
        attributes["gen_ai.response.finish_reasons"] = [reason]
    if content:
        message = {
            "role": "assistant",
            "parts": [{"type": "text", "content": completion.text}],
            **({"finish_reason": reason} if reason else {}),
        }
        attributes["gen_ai.output.messages"] = json.dumps([message], ensure_ascii=False)
    return attributes


def error_description(outcome: Rejected) -> str:
    """The span status's description: the error's message, keys masked."""
    return redact(f"{outcome.kind.value}: {outcome.message}")[:500]


def attempt_attributes(attempt: Attempt) -> dict[str, Any]:
    """One attempt as a span event: its status, the backoff before it, the limiter's hold."""
    attributes: dict[str, Any] = {
        "fanwise.attempt.number": attempt.number,
        "fanwise.attempt.status": "ok" if attempt.error is None else "error",
        "fanwise.attempt.duration": round(attempt.duration, 6),
        "fanwise.attempt.wait": round(attempt.waited, 6),
        "fanwise.attempt.limiter_hold": round(attempt.queued, 6),
    }
    if attempt.error is not None:
        attributes["error.type"] = str(attempt.error.get("kind", "exception"))
        status = attempt.error.get("status_code")
        if isinstance(status, int):
            attributes["http.response.status_code"] = status
    return attributes
