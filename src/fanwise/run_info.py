"""``RunInfo``: which run a result came from and what it cost, as every front door reports it.

A leaf: results (``WorkflowResult``, ``StagedResult``) carry one, and ``to_dict()`` includes it,
so a Python script learns its run id and cost as the CLI's ``--json`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The run in the journal (``id`` None without one) and its cost when it finished."""

    id: int | None = None
    journal: str | None = None
    resume: str | None = None
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    prices_taken: str = ""
    unknown: str | None = None
    """What has no price, when some calls' model has none (unpriced is not free)."""
    max_usd: float | None = None
    not_sent_for_budget: int = 0

    def to_dict(self) -> dict[str, Any]:
        """``{"run": ..., "cost": ...}``: the keys the CLI's ``--json`` document has."""
        unknown = self.unpriced_calls
        cost: dict[str, Any] = {
            "usd": None if unknown else round(self.cost_usd, 6),  # unpriced is not free
            "unpriced_calls": unknown,
            "prices_taken": self.prices_taken,
        }
        if unknown:
            cost["priced_usd"] = round(self.cost_usd, 6)
            cost["unknown"] = self.unknown
        if self.max_usd is not None:
            cost["max_usd"] = self.max_usd
            cost["not_sent_for_budget"] = self.not_sent_for_budget
        return {
            "run": {"id": self.id, "journal": self.journal, "resume": self.resume},
            "cost": cost,
        }


__all__ = ["RunInfo"]
