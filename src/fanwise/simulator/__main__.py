"""``python -m fanwise.simulator``: the same command as ``fanwise simulate``."""

from fanwise.simulator.command import simulate

if __name__ == "__main__":
    simulate.main(prog_name="python -m fanwise.simulator")
