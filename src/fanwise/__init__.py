"""fanwise: parallel LLM workflows done right.

``research`` fans out independent questions and synthesizes one answer from those that arrived;
``ask_all`` is the fan-out alone, ``run`` a ``Workflow`` of ``Stage``s (chain, map, route,
vote; ``aresearch``, ``aask_all`` and ``arun`` in async code). Underneath:
``get_model`` picks the model as the CLI does, the ``Engine`` runs model calls, ``settle``,
``gather_all`` and ``as_settled`` fan out any awaitables, and ``run_workflow`` runs a ``Plan``.
"""

import sys as _sys
import types as _types
import typing as _typing

_EXPORTS = {
    "Call": "fanwise.engine",
    "CallError": "fanwise.outcome",
    "Completion": "fanwise.models.base",
    "ConfigError": "fanwise.factory",
    "Endpoint": "fanwise.models.base",
    "Engine": "fanwise.engine",
    "ErrorKind": "fanwise.outcome",
    "FanwiseError": "fanwise.outcome",
    "Fulfilled": "fanwise.outcome",
    "Model": "fanwise.models.base",
    "ModelSettings": "fanwise.models.settings",
    "OfflineModel": "fanwise.models.offline",
    "OfflineModelWarning": "fanwise.factory",
    "OfflineSettings": "fanwise.models.offline",
    "Outcome": "fanwise.outcome",
    "Plan": "fanwise.stages",
    "PlanError": "fanwise.plans",
    "Rejected": "fanwise.outcome",
    "RunConfig": "fanwise.config",
    "RunInfo": "fanwise.run_info",
    "Request": "fanwise.models.base",
    "RetryPolicy": "fanwise.retry",
    "Stage": "fanwise.stages",
    "StagedResult": "fanwise.stages",
    "Status": "fanwise.stages",
    "Usage": "fanwise.models.base",
    "Workflow": "fanwise.stages",
    "WorkflowResult": "fanwise.stages",
    "aask_all": "fanwise.api",
    "aresearch": "fanwise.api",
    "aresume": "fanwise.api",
    "arun": "fanwise.api",
    "as_settled": "fanwise.settle",
    "ask_all": "fanwise.api",
    "gather_all": "fanwise.settle",
    "get_limiter": "fanwise.factory",
    "get_model": "fanwise.factory",
    "load_plan": "fanwise.plans",
    "research": "fanwise.api",
    "resume": "fanwise.api",
    "run": "fanwise.api",
    "run_workflow": "fanwise.stages",
    "settle": "fanwise.settle",
}
"""Each public name and the module it comes from: imported on first use, so that ``import
fanwise`` (and every ``fanwise`` command, ``--help`` first) pays only for what it touches."""

if _typing.TYPE_CHECKING:
    from fanwise.api import aask_all, aresearch, aresume, arun, ask_all, research, resume, run
    from fanwise.config import RunConfig
    from fanwise.engine import Call, Engine
    from fanwise.factory import ConfigError, OfflineModelWarning, get_limiter, get_model
    from fanwise.models.base import Completion, Model, Request, Usage
    from fanwise.models.offline import OfflineModel, OfflineSettings
    from fanwise.models.settings import ModelSettings
    from fanwise.outcome import (
        CallError,
        ErrorKind,
        FanwiseError,
        Fulfilled,
        Outcome,
        Rejected,
    )
    from fanwise.plans import PlanError, load_plan
    from fanwise.retry import RetryPolicy
    from fanwise.run_info import RunInfo
    from fanwise.settle import as_settled, gather_all, settle
    from fanwise.stages import (
        Plan,
        Stage,
        StagedResult,
        Status,
        Workflow,
        WorkflowResult,
        run_workflow,
    )

    __version__: str
else:

    def __getattr__(name: str) -> object:
        """A public name, imported from its module when first asked for; ``__version__``, read
        from the installed package's metadata (importlib.metadata costs milliseconds that
        ``import fanwise`` need not pay). Hidden from type checkers, which would otherwise
        take every unknown name for an ``object``."""
        if name == "__version__":
            from importlib import metadata

            try:
                return metadata.version("fanwise")
            except metadata.PackageNotFoundError:  # a source tree that was never installed
                return "0+unknown"
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'fanwise' has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})

    class _Package(_types.ModuleType):
        """The package, except that importing the submodule ``fanwise.settle`` does not hide
        the function ``fanwise.settle`` (as the eager ``from fanwise.settle import settle``
        never let it)."""

        def __setattr__(self, name: str, value: object) -> None:
            if name in _EXPORTS and isinstance(value, _types.ModuleType):
                return
            super().__setattr__(name, value)

    _sys.modules[__name__].__class__ = _Package


__all__ = [
    "Call",
    "CallError",
    "Completion",
    "ConfigError",
    "Endpoint",
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
    "RunConfig",
    "RunInfo",
    "Stage",
    "StagedResult",
    "Status",
    "Usage",
    "Workflow",
    "WorkflowResult",
    "__version__",
    "aask_all",
    "aresearch",
    "aresume",
    "arun",
    "as_settled",
    "ask_all",
    "gather_all",
    "get_limiter",
    "get_model",
    "load_plan",
    "research",
    "resume",
    "run",
    "run_workflow",
    "settle",
]
