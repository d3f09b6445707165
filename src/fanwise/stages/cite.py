"""Citations by branch: which answers a citing stage used, and whether it owned up to the gaps.

Each answer handed to a ``cite = true`` stage carries an id (``districts.2``); the stage is
asked to cite ids in square brackets and to name every failed branch. ``coverage`` reads the
ids back out of its text: no tool in the field ties a synthesis to the branches that failed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fanwise.stages.result import Branch

_BRACKETS = re.compile(r"\[([^\[\]\n]{1,200})\]")

CITE_INSTRUCTIONS = (
    "Each answer above has an id in square brackets. Cite the ids of the answers each claim "
    "rests on, in square brackets, e.g. [{example}]. For every answer marked as failed, say "
    "that this part is missing and cite its id."
)


def instructions(branches: Iterable[Branch]) -> str:
    """What a citing stage is told, after its prompt."""
    ids = [b.id for b in branches]
    return CITE_INSTRUCTIONS.format(example=ids[0] if ids else "stage.1")


def cited_ids(text: str) -> set[str]:
    """Every id inside square brackets, ``[a.1]`` or ``[a.1, a.2]``."""
    found: set[str] = set()
    for inside in _BRACKETS.findall(text):
        found.update(part.strip() for part in re.split(r"[,;]", inside) if part.strip())
    return found


def coverage(text: str, branches: Iterable[Branch]) -> dict[str, Any]:
    """Which fulfilled branches were cited, which were not, and which failed ones disclosed."""
    cited = cited_ids(text)
    fulfilled = [b.id for b in branches if b.outcome.status == "fulfilled"]
    failed = [b.id for b in branches if b.outcome.status != "fulfilled"]
    return {
        "cited": [i for i in fulfilled if i in cited],
        "not_cited": [i for i in fulfilled if i not in cited],
        "failed": failed,
        "failed_disclosed": [i for i in failed if i in cited],
        "all_failures_disclosed": all(i in cited for i in failed),
    }


def summary(report: dict[str, Any]) -> str:
    """One line: ``cited 2 of 3 answers (not: a.3); 1 failed branch, disclosed``."""
    cited, missing = report["cited"], report["not_cited"]
    line = f"cited {len(cited)} of {len(cited) + len(missing)} answers"
    if missing:
        line += f" (not cited: {', '.join(missing)})"
    failed = report["failed"]
    if failed:
        undisclosed = [i for i in failed if i not in report["failed_disclosed"]]
        line += f"; {len(failed)} failed branches, " + (
            "all disclosed" if not undisclosed else f"not disclosed: {', '.join(undisclosed)}"
        )
    return line
