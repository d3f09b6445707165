"""What the journal hands back: runs and calls as plain, immutable values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fanwise.engine import CallOutcome
from fanwise.journal.content import Content
from fanwise.models.base import Request, Usage


@dataclass(frozen=True, slots=True)
class Totals:
    """A run's calls, counted by their latest outcome, and everything they cost.

    ``unanswered`` calls were sent and never answered in the journal (a crash, a kill, an
    interruption): they may have been paid for, up to ``unanswered_cost`` more (estimated).
    """

    fulfilled: int = 0
    rejected: int = 0
    cached: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    unpriced: int = 0
    unanswered: int = 0
    unanswered_cost: float = 0.0

    @property
    def cost_max(self) -> float:
        """The most the run may have cost: what is recorded, plus the unanswered calls."""
        return self.cost + self.unanswered_cost

    unpriced_models: tuple[str, ...] = ()
    """The models of the unpriced calls: their cost is unknown, not zero."""

    def to_dict(self) -> dict[str, Any]:
        data = {
            "fulfilled": self.fulfilled,
            "rejected": self.rejected,
            "cached": self.cached,
            "usage": self.usage.to_dict(),
            "cost_usd": None if self.unpriced else round(self.cost, 6),
            "unpriced_calls": self.unpriced,
            "unanswered_calls": self.unanswered,
            "cost_usd_max": round(self.cost_max, 6),
        }
        if self.unpriced:
            data["priced_usd"] = round(self.cost, 6)
            data["unpriced_models"] = list(self.unpriced_models)
        return data


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run: what was asked (``spec``, enough to run it again), when, and how it ended."""

    id: int
    kind: str
    topic: str
    spec: Mapping[str, Any]
    endpoint: str
    status: str
    started_at: float
    ended_at: float | None = None
    total: int | None = None
    reason: str | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)
    pid: int | None = None
    totals: Totals = field(default_factory=Totals)
    content: Content = Content.FULL

    @property
    def text_kept(self) -> bool:
        """Whether its prompts and answers are in the journal (``--journal-content full``)."""
        return self.content is Content.FULL

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "topic": self.topic,
            "status": self.status,
            "reason": self.reason,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "total": self.total,
            "totals": self.totals.to_dict(),
            "content": self.content.value,
            # an --engine auto run's lines and cost by path, and its deadline (docs/deadline.md)
            **({"auto": self.summary["auto"]} if "auto" in self.summary else {}),
        }


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One settled call of a run, as written the moment it settled."""

    run_id: int
    index: int
    key: str
    label: str
    request: Request
    outcome: CallOutcome
    cost: float | None
    recorded_at: float
    line: int | None = None  # a batch call's input line
