"""``fanwise simulate``: the simulator's own command (defined in ``fanwise.simulator.command``)."""

from fanwise.simulator.command import simulate

__all__ = ["simulate"]
