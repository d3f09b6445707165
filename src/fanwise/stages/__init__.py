"""Workflows: a research plan (questions, then a synthesis) and plans of stages (chain, fixed
fan-out, map, route and vote), run by one runner into one result, resumable call by call."""

from fanwise.stages.model import Stage, StageError, Workflow
from fanwise.stages.research import Plan
from fanwise.stages.result import (
    Branch,
    StagedResult,
    StageResult,
    StageStatus,
    Status,
    WorkflowResult,
)
from fanwise.stages.runner import run_stages, run_workflow

__all__ = [
    "Branch",
    "Plan",
    "Stage",
    "StageError",
    "StageResult",
    "StageStatus",
    "StagedResult",
    "Status",
    "Workflow",
    "WorkflowResult",
    "run_stages",
    "run_workflow",
]
