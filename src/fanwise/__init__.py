"""fanwise: parallel LLM workflows done right.

``research`` fans out independent questions and synthesizes one answer from those that arrived;
``ask_all`` is the fan-out alone (``aresearch`` and ``aask_all`` in async code). Underneath:
``get_model`` picks the model as the CLI does, the ``Engine`` runs model calls, ``settle``,
``gather_all`` and ``as_settled`` fan out any awaitables, and ``run_workflow`` runs a ``Plan``.
"""

import typing as _typing

from fanwise.api import aask_all, aresearch, ask_all, research
from fanwise.engine import Call, Engine
from fanwise.factory import ConfigError, OfflineModelWarning, get_limiter, get_model
from fanwise.models.base import Completion, Model, Request, Usage
from fanwise.models.offline import OfflineModel, OfflineSettings
from fanwise.outcome import CallError, ErrorKind, FanwiseError, Fulfilled, Outcome, Rejected
from fanwise.plans import PlanError, load_plan
from fanwise.retry import RetryPolicy
from fanwise.settle import as_settled, gather_all, settle
from fanwise.workflow import ModelSettings, Plan, Status, WorkflowResult, run_workflow

if _typing.TYPE_CHECKING:
    __version__: str
else:

    def __getattr__(name: str) -> str:
        """``__version__``, read from the installed package's metadata when first asked for
        (importlib.metadata costs milliseconds that ``import fanwise`` need not pay). Hidden
        from type checkers, which would otherwise take every unknown name for a string."""
        if name != "__version__":
            raise AttributeError(f"module 'fanwise' has no attribute {name!r}")
        from importlib import metadata

        try:
            return metadata.version("fanwise")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"


__all__ = [
    "Call",
    "CallError",
    "Completion",
    "ConfigError",
    "Engine",
    "ErrorKind",
    "FanwiseError",
    "Fulfilled",
    "Model",
    "ModelSettings",
    "OfflineModel",
    "OfflineModelWarning",
    "OfflineSettings",
    "Outcome",
    "Plan",
    "PlanError",
    "Rejected",
    "Request",
    "RetryPolicy",
    "Status",
    "Usage",
    "WorkflowResult",
    "__version__",
    "aask_all",
    "aresearch",
    "as_settled",
    "ask_all",
    "gather_all",
    "get_limiter",
    "get_model",
    "load_plan",
    "research",
    "run_workflow",
    "settle",
]
