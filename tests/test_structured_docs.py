"""docs/structured-outputs.md: its Python example and its CLI example run as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

PAGE = (Path(__file__).parent.parent / "docs" / "structured-outputs.md").read_text("utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", PAGE, re.M | re.S)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}
    env["FANWISE_HOME"] = str(cwd)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_python_example_runs_and_prints_parsed_values(tmp_path: Path) -> None:
    """The page's Python block exits 0 with no key and prints each question's parsed sights."""
    [code] = blocks("python")
    done = run(["-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("What to see") for line in lines)
    assert "name 1: " in done.stdout  # the offline model's schema-valid names, numbered


def test_the_cli_example_runs_and_gives_parsed_answers(tmp_path: Path) -> None:
    """The page's schema file and command, run offline, give each question a parsed value."""
    schema = blocks("json")[0]
    (tmp_path / "answer.schema.json").write_text(schema)
    [command] = blocks("sh")
    words = shlex.split(command)
    assert words[0] == "fanwise"
    done = run(["-m", "fanwise", *words[1:], "--offline-latency", "0,0"], tmp_path)
    assert done.returncode == 0, done.stderr
    questions = json.loads(done.stdout)["questions"]
    assert [set(q["parsed"]) for q in questions] == [{"summary", "confidence"}] * 2


def test_the_error_the_page_quotes_is_the_one_given(tmp_path: Path) -> None:
    """The quoted bad-schema message is what the command prints for that file, exit 2."""
    (tmp_path / "bad.json").write_text('{"type": "objekt"}')
    done = run(["-m", "fanwise", "research", "K", "-q", "Q?", "--schema", "bad.json"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() in PAGE
