"""Start-up is part of the product: importing fanwise loads only what every use needs."""

from __future__ import annotations

import json
import subprocess
import sys

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
