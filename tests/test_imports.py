"""Every arrow between fanwise's modules goes one way: no import cycle anywhere in src/."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import fanwise

SRC = Path(fanwise.__file__).parent


def module_names() -> dict[str, Path]:
    names = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(tree: ast.AST, known: set[str]) -> Iterator[str]:
    """The fanwise modules a module imports, at import time or lazily inside a function."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            node.body = []  # annotations only: not an import at run time
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in known:
                    yield full
                elif node.module in known:
                    yield node.module


def import_graph() -> dict[str, set[str]]:
    names = module_names()
    known = set(names)
    return {
        name: set(imported(ast.parse(path.read_text(encoding="utf-8")), known)) - {name}
        for name, path in names.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    """No group of modules imports each other, even through an import inside a function."""
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check itself can fail: a two-module loop is reported."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_only_the_cli_and_the_ui_import_the_ui() -> None:
    """What a person sees lives in ``fanwise.ui``: the library (engine, runners, journal, API)
    imports none of it, so a Python user never loads a terminal or report module."""
    graph = import_graph()
    outside = {
        name: sorted(target for target in targets if target.startswith("fanwise.ui"))
        for name, targets in graph.items()
        if not name.startswith(("fanwise.ui", "fanwise.cli"))
    }
    assert {name: ui for name, ui in outside.items() if ui} == {}


def test_the_terminal_and_report_modules_live_in_ui() -> None:
    """The display, timeline and report modules moved into ``fanwise.ui``; none is left behind."""
    names = set(module_names())
    moved = ("console", "plain", "live", "progress", "periodic", "stream", "timeline", "charts")
    for name in (*moved, "html_report", "documents", "stage_show", "stage_report"):
        assert f"fanwise.ui.{name}" in names
    assert not {f"fanwise.{name}" for name in (*moved, "report", "html_report")} & names
    assert not {"fanwise.stages.show", "fanwise.stages.report"} & names
