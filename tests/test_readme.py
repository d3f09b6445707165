"""Every ```python block of the README runs as written, with no API key (the offline model)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), re.M | re.S)


def test_the_readme_has_python_blocks() -> None:
    """The blocks below are found: a README without them would make the next test vacuous."""
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{n + 1}" for n in range(len(BLOCKS))])
def test_a_readme_python_block_runs_with_no_key(code: str, tmp_path: Path) -> None:
    """The block exits 0 in a fresh interpreter with no key, and prints something."""
    env = {**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}
    env["FANWISE_HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def _flags(command: str) -> set[str]:
    from click.testing import CliRunner

    from fanwise.cli import cli

    shown = CliRunner().invoke(cli, [command, "--help"], terminal_width=200).output
    return set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z-]*)", shown, re.M))


def test_the_readme_names_every_workflow_flag_batch_refuses() -> None:
    """The CLI reference's 'batch takes them all but ...' names exactly the flags it lacks."""
    text = README.read_text(encoding="utf-8")
    said = re.search(r"`batch` takes them all but (.*?)[:;]", text, re.S)
    assert said is not None
    refused = set(re.findall(r"`(--[a-z-]+)`", said.group(1)))
    assert refused == _flags("run") - _flags("batch") - {"--set"}
