"""Staged workflows: chain, fixed fan-out, map, route and vote, resumable call by call."""

from fanwise.stages.model import Stage, StageError, Workflow
from fanwise.stages.result import Branch, RunStatus, StagedResult, StageResult, StageStatus
from fanwise.stages.runner import run_stages

__all__ = [
    "Branch",
    "RunStatus",
    "Stage",
    "StageError",
    "StageResult",
    "StageStatus",
    "StagedResult",
    "Workflow",
    "run_stages",
]
