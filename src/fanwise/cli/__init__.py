"""The ``fanwise`` command: a click group whose docstrings are the ``--help``.

Each command is imported only when it runs (``LazyGroup``): ``fanwise --help`` loads click and
this table, not the simulator, the journal, aiohttp or rich. ``tests/test_startup.py`` checks
the table against the commands themselves.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from fanwise.cli.lazy import LazyCommand, LazyGroup

COMMANDS = {
    "batch": LazyCommand(
        "fanwise.cli.batch:batch",
        "Send one request per line of INPUT.jsonl in parallel; write one result line for each.",
    ),
    "export": LazyCommand(
        "fanwise.cli.prune_cmds:export_command",
        "Write run RUN as JSONL: a first line for the run (its spec, status and totals), then one "
        "line per call with its request and latest outcome, with no API call.",
    ),
    "prune": LazyCommand(
        "fanwise.cli.prune_cmds:prune_command",
        "Delete old runs and their calls from the journal, then give the space back (VACUUM).",
    ),
    "report": LazyCommand(
        "fanwise.cli.report_cmd:report",
        "Write run RUN's HTML report from the journal, with no API call: a timeline of every "
        "call and attempt, the answers, the synthesis and the stats, in one file that works "
        "offline.",
    ),
    "research": LazyCommand(
        "fanwise.cli.workflows:research",
        "Ask every -q QUESTION about TOPIC at once, then synthesize one answer.",
    ),
    "resume": LazyCommand(
        "fanwise.cli.journal_cmds:resume",
        "Finish run RUN: send only its missing or failed calls, reuse the answered ones (no "
        "request for them), then synthesize.",
    ),
    "run": LazyCommand(
        "fanwise.cli.workflows:run_plan",
        "Run a plan: a TOML file of questions and synthesis, or of [[stage]] tables (or a "
        "built-in plan name, e.g. travel or city-districts).",
    ),
    "runs": LazyCommand(
        "fanwise.cli.journal_cmds:runs",
        "List recent runs: id, when, topic, research calls answered and failed, the synthesis, "
        "cost and status.",
    ),
    "show": LazyCommand(
        "fanwise.cli.journal_cmds:show",
        "Print run RUN's results again from the journal, with no API call.",
    ),
    "simulate": LazyCommand(
        "fanwise.simulator.command:simulate",
        "Run an OpenAI-compatible API on HOST:PORT with simulated latency, faults and rate limits.",
    ),
    "travel": LazyCommand(
        "fanwise.cli.workflows:travel",
        "Research DESTINATION in parallel and write a travel guide (the seed's workflow).",
    ),
}
"""Every command of the group: where it lives and the first sentence of its help."""


class FanwiseGroup(LazyGroup):
    """The command group; a closed stdout ends any command quietly, and one that cannot be
    written ends it with one line and exit 6 (``cli/pipes.py``)."""

    def invoke(self, ctx: click.Context) -> Any:
        from fanwise.cli import pipes  # the standard library only

        pipes.keep("")
        guard = pipes.GuardedStdout(sys.stdout)
        sys.stdout = guard
        try:
            result = super().invoke(ctx)
        except (OSError, BaseExceptionGroup, click.exceptions.Exit, SystemExit) as error:
            if pipes.reader_gone(error):
                from fanwise.cli.errors import EXIT_CLOSED_PIPE

                pipes.silence(guard.stream)
                raise click.exceptions.Exit(EXIT_CLOSED_PIPE) from None
            if guard.error is None or not (
                isinstance(error, (click.exceptions.Exit, SystemExit))
                or pipes.only_os_errors(error)
            ):
                raise
            from fanwise.cli.errors import EXIT_OUTPUT_FAILED

            code = error.code if isinstance(error, SystemExit) else getattr(error, "exit_code", 0)
            if code == EXIT_OUTPUT_FAILED:  # the command said so itself (a batch's output)
                pipes.silence(guard.stream)
                raise
            result = None
        finally:
            sys.stdout = guard.stream
        if guard.error is None:
            return result
        from fanwise.cli.errors import EXIT_OUTPUT_FAILED

        pipes.stdout_failed(guard.error)
        raise click.exceptions.Exit(EXIT_OUTPUT_FAILED)


@click.group(
    cls=FanwiseGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="fanwise", prog_name="fanwise")
def cli() -> None:
    """fanwise: parallel LLM workflows. Fan out independent calls, keep every answer that
    arrives, synthesize one result.

    With no OPENAI_API_KEY, every command runs on the built-in offline model.
    """


def main() -> None:
    """The ``fanwise`` command. A Ctrl-C outside a run's own handling (while parsing flags or
    opening the journal) exits 130, not click's "Aborted!" with exit 1."""
    try:
        code = cli.main(prog_name="fanwise", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        from fanwise.cli.errors import EXIT_INTERRUPTED  # not loaded by `fanwise --help`

        click.echo("fanwise: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)  # --help, --version, click's Exit(code)
