"""A journaled run's ``RunConfig`` read back for a resume, whatever version wrote it.

Since configs are journaled, a run's spec holds ``config`` (``RunConfig.to_dict``, versioned)
and ``args`` (a workflow's quorum and fail-fast). A run journaled before holds the CLI's flags
(or the Python API's few settings) as ``options``: converted here, so an old journal resumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fanwise.config.run_config import RunConfig
from fanwise.factory import ConfigError

RESUME_SETTINGS = (
    *("max_cost", "concurrency", "retries", "retry_with", "timeout", "rpm", "tpm"),
    *("base_url", "endpoints", "prices", "batch_poll"),
)
"""What a resume may change: how a run is paid for, paced or which server answers it, never
what it asks."""


def stored_config(spec: Mapping[str, Any]) -> RunConfig:
    """The config a run was journaled with; a run from before configs: its ``options``."""
    if "config" in spec:
        return RunConfig.from_dict(spec["config"])
    return RunConfig.from_options(spec.get("options", {}))


def stored_args(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A workflow's quorum, fail-fast and warm-up as journaled (``options`` before configs were)."""
    args = spec.get("args")
    if args is not None:
        return {
            "min_answers": int(args["min_answers"]),
            "fail_fast": bool(args["fail_fast"]),
            "warm": bool(args.get("warm", True)),
        }
    options = spec.get("options", {})
    return {
        "min_answers": int(options.get("min_answers", 1)),
        "fail_fast": options.get("mode") == "all",
        "warm": bool(options.get("warm", True)),
    }


def resumed_config(
    spec: Mapping[str, Any], journal_path: str | None, overrides: Mapping[str, Any]
) -> RunConfig:
    """The run's own config, recording into the journal it was found in, with a resume's
    ``overrides`` (only ``RESUME_SETTINGS``)."""
    unknown = sorted(set(overrides) - set(RESUME_SETTINGS))
    if unknown:
        raise ConfigError(unknown[0], f"a resume cannot change {unknown[0]!r}")
    changes = dict(overrides)
    if "endpoints" in changes:
        changes["endpoints"] = tuple(changes["endpoints"])
    return stored_config(spec).replace(journal=True, journal_path=journal_path, **changes)


__all__ = ["RESUME_SETTINGS", "resumed_config", "stored_args", "stored_config"]
