"""What the simulator has seen, so a test can assert on the traffic a client really sent."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SimulatorStats:
    """A snapshot. Only API calls (``/v1/responses``, ``/v1/chat/completions``) are counted.

    ``by_status`` counts responses sent; ``by_fault`` counts faults served, by kind (``"429"``,
    ``"drop"``...; ``"rpm"`` and ``"tpm"`` for refusals by the rate-limit buckets);
    ``attempts`` maps each prompt to the number of requests that carried it.
    """

    requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_fault: dict[str, int] = field(default_factory=dict)
    by_endpoint: dict[str, int] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # input tokens read from the prompt cache (``prompt_cache.py``)
    cache_write_tokens: int = 0  # Anthropic breakpoints written to it

    def to_dict(self) -> dict[str, Any]:
        """The JSON form served at ``GET /_stats`` (status codes become string keys)."""
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_fault": dict(sorted(self.by_fault.items())),
            "by_endpoint": dict(sorted(self.by_endpoint.items())),
            "attempts": dict(self.attempts),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }


class StatsRecorder:
    """The live counters behind ``SimulatorStats``; one per server, never shared."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Forget everything except the requests still being answered."""
        self.requests = 0
        self.peak_in_flight = self.in_flight
        self.by_status: Counter[int] = Counter()
        self.by_fault: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_tokens = 0
        self.cache_write_tokens = 0

    def started(self, endpoint: str) -> None:
        self.requests += 1
        self.by_endpoint[endpoint] += 1
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def finished(self) -> None:
        self.in_flight -= 1

    def attempt(self, prompt: str) -> int:
        """Count one more request for ``prompt``; returns its attempt number, from 1."""
        self.attempts[prompt] += 1
        return self.attempts[prompt]

    def snapshot(self) -> SimulatorStats:
        return SimulatorStats(
            requests=self.requests,
            in_flight=self.in_flight,
            peak_in_flight=self.peak_in_flight,
            by_status=dict(self.by_status),
            by_fault=dict(self.by_fault),
            by_endpoint=dict(self.by_endpoint),
            attempts=dict(self.attempts),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_tokens=self.cached_tokens,
            cache_write_tokens=self.cache_write_tokens,
        )


__all__ = ["SimulatorStats", "StatsRecorder"]
