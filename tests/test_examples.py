"""The examples keep working: the seed's travel program runs on the offline model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fanwise import OfflineModel, OfflineSettings

EXAMPLES = Path(__file__).parent.parent / "examples"


async def test_the_travel_example_writes_a_guide(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/travel.py asks three questions at once and synthesizes a guide from them."""
    spec = importlib.util.spec_from_file_location("travel_example", EXAMPLES / "travel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    guide = await module.main("Kyoto", OfflineModel(OfflineSettings(latency=(0, 0.01))))
    assert guide is not None and guide.startswith("# Kyoto: a guide")
    assert guide.count("## ") == 3
    assert capsys.readouterr().out.count("✅ Answered") == 3
