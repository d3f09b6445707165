"""Start-up is part of the product: importing fanwise loads only what every use needs."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("fanwise.simulator", "rich", "openai", "ray", "fanwise.batchapi", "fanwise.cluster")
"""Modules only some commands need: the simulator for `simulate`, rich for the live view, the
SDK for `--transport sdk`, Ray and the Batch API when asked for."""


def loaded_after(statement: str) -> set[str]:
    """The heavy modules in ``sys.modules`` after ``statement`` runs in a fresh interpreter."""
    code = (
        f"import sys, json\n{statement}\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(result.stdout))


def test_import_fanwise_loads_no_simulator_no_rich_no_sdk() -> None:
    """`import fanwise` leaves the simulator, rich, the openai SDK, Ray and the Batch API out."""
    assert loaded_after("import fanwise") == set()


def test_fanwise_help_imports_no_command() -> None:
    """`fanwise --help` loads click and the command table: no command module, no asyncio."""
    code = (
        "import sys\nsys.argv = ['fanwise', '--help']\nfrom fanwise.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print([m for m in sys.modules if m.startswith('fanwise') or m in ('asyncio', 'rich')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    *help_lines, modules = result.stdout.splitlines()
    assert sorted(ast.literal_eval(modules)) == ["fanwise", "fanwise.cli", "fanwise.cli.lazy"]
    assert any(line.split()[:1] == ["batch"] for line in help_lines)


@pytest.mark.parametrize("limit", [30, 45, 80, 200])
def test_the_command_table_says_what_each_command_says(limit: int) -> None:
    """Each command's listed help is what the command itself would show, at any width."""
    import click

    from fanwise.cli import COMMANDS

    for name, entry in COMMANDS.items():
        command = entry.load()
        stand_in = click.Command(name, help=entry.summary)
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), name
        assert command.name == name


def test_a_quiet_batch_loads_only_what_it_runs(simulator_process: str, tmp_path: Path) -> None:
    """`fanwise batch --quiet` over aiohttp loads no rich, simulator, SDK, Ray, Batch API or
    HTML report: each waits for the flag that needs it."""
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "hello", "custom_id": "a"}\n', encoding="utf-8")
    args = ["batch", str(source), "--out", str(tmp_path / "out.jsonl"), "--quiet"]
    args += ["--provider", "openai", "--base-url", simulator_process]
    heavy = (*HEAVY, "fanwise.ui.html_report", "fanwise.ui.live")
    code = (
        f"import sys\nsys.argv = ['fanwise', *{args!r}]\nfrom fanwise.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    env = {**os.environ, "OPENAI_API_KEY": "test-key"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert ast.literal_eval(result.stdout.splitlines()[-1]) == []
    assert '"response":{' in (tmp_path / "out.jsonl").read_text(encoding="utf-8")


def test_the_command_collects_cycles_rarely_and_the_library_leaves_the_collector_alone() -> None:
    """``fanwise`` (the command) freezes start-up and raises the collector's threshold before
    it runs a command; ``import fanwise`` changes neither."""
    code = (
        "import gc, json, sys\n"
        "default = gc.get_threshold()\n"
        "import fanwise, fanwise.api\n"
        "library = gc.get_threshold() == default\n"
        "import fanwise.cli\n"
        "seen = []\n"
        "fanwise.cli.main = lambda: seen.append([gc.get_threshold(), gc.get_freeze_count()])\n"
        "from fanwise.__main__ import main\n"
        "main()\n"
        "print(json.dumps([library, *seen[0]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    library, command, frozen = json.loads(result.stdout)
    assert library is True
    assert command == [50_000, 20, 100] and frozen > 10_000
