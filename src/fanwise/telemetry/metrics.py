"""The GenAI client metrics: ``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage``.

Recorded once per call that reached the model (a cached call made no operation), with the bucket
boundaries the semantic conventions advise. The tokens are ``outcome_usage``'s, the journal's and
the summary's: a refusal and an answer that broke its schema still cost what they cost.
"""

from __future__ import annotations

from opentelemetry.metrics import Meter

from fanwise.models.base import Completion
from fanwise.outcome import Fulfilled, Rejected
from fanwise.structured import outcome_usage
from fanwise.telemetry.genai import OPERATION

DURATION_BUCKETS = tuple(0.01 * 2**power for power in range(14))  # 0.01, 0.02 ... 81.92 s
TOKEN_BUCKETS = tuple(float(4**power) for power in range(14))  # 1, 4, 16 ... 67108864


class CallMetrics:
    """The two histograms, and what one settled call adds to them."""

    def __init__(self, meter: Meter, provider: str) -> None:
        self.provider = provider
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )

    def record(self, model: str | None, outcome: Fulfilled[Completion] | Rejected) -> None:
        if not outcome.attempts:  # answered from the journal, or never sent
            return
        attributes: dict[str, str] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": self.provider,
        }
        if model:
            attributes["gen_ai.request.model"] = model
        if isinstance(outcome, Rejected):
            attributes["error.type"] = outcome.kind.value
        elif outcome.value.model:
            attributes["gen_ai.response.model"] = outcome.value.model
        self.duration.record(outcome.latency, attributes)
        usage = outcome_usage(outcome)
        if isinstance(outcome, Rejected) and not usage.total_tokens:  # no answer, no tokens
            return
        self.tokens.record(usage.input_tokens, {**attributes, "gen_ai.token.type": "input"})
        self.tokens.record(usage.output_tokens, {**attributes, "gen_ai.token.type": "output"})
