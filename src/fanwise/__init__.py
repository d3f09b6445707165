"""fanwise: parallel LLM workflows done right.

Fan out independent calls (``settle``, ``gather_all``, ``as_settled``, or the ``Engine`` for model
calls), keep every answer that arrives, and synthesize one result (``run_workflow``).
"""

from fanwise.engine import Call, Engine, request_key
from fanwise.limits import Limits, build_limiter
from fanwise.models.base import Completion, Model, Request, Usage
from fanwise.models.offline import OfflineModel, OfflineSettings
from fanwise.outcome import (
    Attempt,
    AuthError,
    BadRequest,
    CallError,
    CallTimeout,
    Cancelled,
    ErrorKind,
    FanwiseError,
    Fulfilled,
    InvalidResponse,
    NetworkError,
    Outcome,
    RateLimited,
    Rejected,
    ServerError,
)
from fanwise.plans import PlanError, load_plan
from fanwise.retry import NoWait, RetryBudget, RetryPolicy
from fanwise.settle import as_settled, gather_all, settle
from fanwise.workflow import ModelSettings, Plan, Status, WorkflowResult, run_workflow

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "AuthError",
    "BadRequest",
    "Call",
    "CallError",
    "CallTimeout",
    "Cancelled",
    "Completion",
    "Engine",
    "ErrorKind",
    "FanwiseError",
    "Fulfilled",
    "InvalidResponse",
    "Limits",
    "Model",
    "ModelSettings",
    "NetworkError",
    "NoWait",
    "OfflineModel",
    "OfflineSettings",
    "Outcome",
    "Plan",
    "PlanError",
    "RateLimited",
    "Rejected",
    "Request",
    "RetryBudget",
    "RetryPolicy",
    "ServerError",
    "Status",
    "Usage",
    "WorkflowResult",
    "__version__",
    "as_settled",
    "build_limiter",
    "gather_all",
    "load_plan",
    "request_key",
    "run_workflow",
    "settle",
]
