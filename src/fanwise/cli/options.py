"""``RunOptions``: every shared flag of a run, as plain data.

No decisions here: ``fanwise.factory`` picks the model, limiter and settings from these values
(``fanwise.cli.engines`` hands them over), and ``fanwise.cli.flags`` declares the flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Every shared flag, as parsed. A flag a command does not take keeps its default here."""

    model: str | None
    provider: str
    base_url: str | None
    api: str
    reasoning_effort: str | None
    concurrency: int
    timeout: float | None
    deadline: float | None
    retries: int
    mode: str
    out: str | None
    quiet: bool
    plain: bool
    report: str | None
    seed: int
    offline_latency: tuple[float, float]
    offline_fail_rate: float
    min_answers: int = 1
    as_json: bool = False
    stream: bool = True
    journal: str | None = None
    no_journal: bool = False
    journal_content: str = "full"
    on_journal_error: str = "stop"
    cache: bool = False
    max_cost: float | None = None
    prices: str | None = None
    price: tuple[str, ...] = ()  # --price MODEL=input=N,output=N, repeatable
    rpm: int | None = None
    tpm: int | None = None
    retry_budget: int | None = None
    max_wait: float = 600.0
    adapt: bool = True
    transport: str = "aiohttp"
    engine: str = "live"
    endpoints: tuple[str, ...] = ()
    retry_with: str = "batch"
    batch_poll: float = 60.0
    workers: int = 2
    ray_address: str | None = None
    repair: bool = True
    warm: bool = True
    plan_only: bool = False
    live_latency: float = 10.0
    deadline_at: float | None = None
    """``--engine auto``: the deadline on the wall clock (Unix seconds), fixed when the run
    starts, so that a resume keeps to the same one."""
    cache_prefix: bool = False
    max_output_tokens: int | None = None

    @property
    def server(self) -> str | None:
        """The OpenAI-compatible server the flags name, if any: --base-url, or the first of
        --endpoints. Naming one means that provider, never the offline model (with no key)."""
        return self.base_url or next(iter(self.endpoints), None)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> RunOptions:
        """Take this class's fields out of a command's keyword arguments (the rest stay)."""
        names = [name for name in cls.__dataclass_fields__ if name in kwargs]
        return cls(**{name: kwargs.pop(name) for name in names})
