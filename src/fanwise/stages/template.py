"""Placeholders in stage prompts: ``{stage}``, ``{stage.field}``, ``{item}``, ``{index}``.

Only ``{name}`` and ``{name.path.to.field}`` with identifier-like parts are placeholders, so a
prompt may quote JSON (``{"a": 1}``) as it is; ``{{`` and ``}}`` write a literal brace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*(?:\.\w+)*)\}")


class PathError(LookupError):
    """A ``{name.field}`` path that the value does not have."""


def placeholders(template: str) -> list[str]:
    """The dotted paths a template uses, in order (``{{`` escapes skipped)."""
    return [m[1] for m in PLACEHOLDER.finditer(template) if m[1]]


def render(template: str, lookup: Callable[[str], str]) -> str:
    """``template`` with each placeholder replaced by ``lookup(path)``."""

    def one(match: re.Match[str]) -> str:
        if match[1] is None:
            return match[0][0]
        return lookup(match[1])

    return PLACEHOLDER.sub(one, template)


def fill(template: str, values: Mapping[str, str]) -> str:
    """Fill only the names in ``values`` (plan variables); leave every other placeholder."""

    def one(match: re.Match[str]) -> str:
        path = match[1]
        return values[path] if path is not None and path in values else match[0]

    return PLACEHOLDER.sub(one, template)


def walk(value: Any, fields: Sequence[str], where: str) -> Any:
    """``value``'s field ``fields[0]``, then its ``fields[1]``...; a list takes a number."""
    for depth, name in enumerate(fields):
        if isinstance(value, Mapping) and name in value:
            value = value[name]
        elif isinstance(value, list) and name.isdigit() and int(name) < len(value):
            value = value[int(name)]
        else:
            at = ".".join([where, *fields[:depth]])
            has = f" (it has {', '.join(map(str, value))})" if isinstance(value, Mapping) else ""
            raise PathError(f"{at} has no field {name!r}{has}")
    return value


def as_text(value: Any) -> str:
    """A value as prompt text: a string as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
