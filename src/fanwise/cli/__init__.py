"""The ``fanwise`` command: a click group whose docstrings are the ``--help``."""

from __future__ import annotations

import click

from fanwise.cli.journal_cmds import COMMANDS as JOURNAL_COMMANDS
from fanwise.cli.simulate import simulate
from fanwise.cli.workflows import research, run_plan, travel


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="fanwise", prog_name="fanwise")
def cli() -> None:
    """fanwise: parallel LLM workflows. Fan out independent calls, keep every answer that
    arrives, synthesize one result.

    With no OPENAI_API_KEY, every command runs on the built-in offline model.
    """


for command in (travel, research, run_plan, simulate, *JOURNAL_COMMANDS):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="fanwise")
