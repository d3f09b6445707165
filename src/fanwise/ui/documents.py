"""A run's result as documents: Markdown for people, JSON for programs, HTML for the timeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fanwise.stages.result import WorkflowResult
from fanwise.ui.html_report import to_html
from fanwise.ui.words import cli_words


def to_json(result: WorkflowResult, **extra: Any) -> str:
    """The result's one document (``result.to_dict()``: stages/document.py) as JSON text;
    ``extra`` adds the run's ``run`` and ``cost`` (and an auto run's ``auto``)."""
    return json.dumps({**result.to_dict(), **extra}, indent=2, ensure_ascii=False) + "\n"


def to_markdown(result: WorkflowResult) -> str:
    """The synthesised text; when there is none, the answers that did arrive, so none is lost."""
    if result.text is not None:
        return result.text if result.text.endswith("\n") else result.text + "\n"
    lines = [f"# {result.workflow.topic}: no {result.workflow.title}", "", f"_{result.reason}_", ""]
    for answer in result.to_dict()["questions"]:
        lines.append(f"## {answer['question']}")
        lines.append("")
        if answer["status"] == "fulfilled":
            lines.append(answer["answer"].strip())
            if answer.get("truncated"):
                lines += ["", "_(cut at its token cap)_"]
        else:
            error = answer["error"]
            lines.append(f"_failed: {error['kind']}: {cli_words(error['message'])}_")
        lines.append("")
    return "\n".join(lines)


def write_report(path: str | Path, result: WorkflowResult, **details: Any) -> None:
    """Write the self-contained HTML report (see ``html_report.to_html`` for ``details``)."""
    Path(path).write_text(to_html(result, **details), encoding="utf-8")


__all__ = ["to_html", "to_json", "to_markdown", "write_report"]
