"""The error of a plan that cannot run: which file, which line, what is wrong."""

from __future__ import annotations

from fanwise.outcome import FanwiseError


class PlanError(FanwiseError):
    """A plan that cannot run; says which file, which line and what is wrong.

    ``missing`` names the variables that need a value, ``unknown`` a variable given that the
    plan does not declare: the caller says how to give them (the CLI: ``--set``).
    """

    def __init__(
        self,
        source: str,
        message: str,
        line: int | None = None,
        *,
        missing: tuple[str, ...] = (),
        unknown: str | None = None,
    ) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line
        self.missing = missing
        self.unknown = unknown
