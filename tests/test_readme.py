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
