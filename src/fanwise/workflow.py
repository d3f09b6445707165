"""Where ``Plan``, ``WorkflowResult``, ``Status`` and ``run_workflow`` were first defined.

A research plan is now a two-stage workflow run by the one stages runner (``fanwise.stages``);
these names are kept here so that code importing them from ``fanwise.workflow`` still works.
"""

from fanwise.models.settings import ModelSettings
from fanwise.stages.model import SchemaSource
from fanwise.stages.research import (
    DEFAULT_SYNTHESIS,
    Answer,
    Plan,
    Stats,
    cache_ttl,
    synthesis_prompt,
    warm_first,
)
from fanwise.stages.result import Status, WorkflowResult
from fanwise.stages.runner import check_structured, run_workflow

__all__ = [
    "DEFAULT_SYNTHESIS",
    "Answer",
    "ModelSettings",
    "Plan",
    "SchemaSource",
    "Stats",
    "Status",
    "WorkflowResult",
    "cache_ttl",
    "check_structured",
    "run_workflow",
    "synthesis_prompt",
    "warm_first",
]
