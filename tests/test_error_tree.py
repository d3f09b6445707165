"""Every error a user can catch is a ``FanwiseError``: one ``except`` catches all of fanwise."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import fanwise
from fanwise import FanwiseError

INTERNAL = {
    "fanwise.stages.runner.StageFailed",  # caught in the runner: the stage's status says it
    "fanwise.stages.template.PathError",  # caught in the runner, raised again as StageFailed
    "fanwise.batch.lines._Bad",  # caught in the reader, raised again as LineError
    "fanwise.schemas_anthropic.Unavailable",  # caught in schemas, raised again as SchemaError
}
"""Exceptions raised and caught inside fanwise: no user ever sees one."""

OUTSIDE = ("fanwise.simulator", "fanwise.cli")
"""The test double and the command line (whose errors are click's, exit 2) are not the library."""


def library_errors() -> dict[str, type[BaseException]]:
    """Every exception class (warnings aside) defined in a library module, by its name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(fanwise.__path__, "fanwise."):
        if info.name.startswith(OUTSIDE):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and not issubclass(value, Warning)  # a warning is told, never raised to catch
                and value.__module__ == info.name
            ):
                found[f"{info.name}.{value.__qualname__}"] = value
    return found


def test_every_public_error_is_a_fanwise_error() -> None:
    """Each exception class fanwise defines, but the few it catches itself, is a FanwiseError."""
    errors = library_errors()
    assert "fanwise.stages.model.StageError" in errors  # the walk does reach the library
    strays = sorted(name for name, error in errors.items() if not issubclass(error, FanwiseError))
    assert set(strays) <= INTERNAL, strays


@pytest.mark.parametrize(
    ("name", "second"),
    [
        ("StageError", ValueError),
        ("SchemaError", ValueError),
        ("LineError", ValueError),
        ("ConfigError", ValueError),
        ("PlanError", FanwiseError),
        ("TelemetryError", FanwiseError),
        ("RayMissing", ImportError),
        ("CallTimeout", TimeoutError),
    ],
)
def test_errors_keep_their_second_base(name: str, second: type[BaseException]) -> None:
    """``except ValueError`` (or ImportError, TimeoutError) still catches what it caught."""
    errors = {error.__name__: error for error in library_errors().values()}
    assert issubclass(errors[name], FanwiseError)
    assert issubclass(errors[name], second)
