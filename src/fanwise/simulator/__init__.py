"""An OpenAI-compatible HTTP server with latency, faults and rate limits: the test double.

Use it in-process (``async with Simulator(SimulatorConfig(...)) as sim``) or as a process
(``python -m fanwise.simulator --port 0`` / ``fanwise simulate``); docs/simulator.md has the rest.
"""

from fanwise.simulator.config import (
    BatchTiming,
    ConfigError,
    Latency,
    ScriptRule,
    SimulatorConfig,
    parse_fault,
)
from fanwise.simulator.server import Simulator
from fanwise.simulator.stats import SimulatorStats

__all__ = [
    "BatchTiming",
    "ConfigError",
    "Latency",
    "ScriptRule",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "parse_fault",
]
