"""``fanwise prune`` and ``fanwise export RUN``: the journal kept small, and a run taken out."""

from __future__ import annotations

import re
import sys
import time

import click

from fanwise.cli.errors import InputError
from fanwise.cli.journal_flags import journal_option
from fanwise.cli.journal_read import RUN_ID, process_alive, read_journal
from fanwise.journal.maintenance import export_run, prune

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Age(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click stubs
    """An age like ``30d``, ``12h``, ``2w`` or ``90m``, in seconds."""

    name = "AGE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(value))
        if match is None:
            self.fail(f"{value!r} is not an age like 30d, 12h, 2w or 90m", param, ctx)
        return float(match[1]) * _UNITS[match[2]]


@click.command(name="prune")
@click.option(
    "--older-than", type=Age(), help="Delete runs started longer ago than this, e.g. 30d or 12h."
)
@click.option(
    "--keep", type=click.IntRange(min=0), metavar="N", help="Keep only the N newest runs."
)
@journal_option()
def prune_command(older_than: float | None, keep: int | None, journal: str | None) -> None:
    """Delete old runs and their calls from the journal, then give the space back (VACUUM).

    Runs still in progress are never deleted. Give --older-than, --keep or both (a run goes if
    either says so).
    """
    if older_than is None and keep is None:
        raise InputError(
            "prune: say what to delete: --older-than AGE (e.g. 30d), --keep N, or both"
        )
    with read_journal(journal, purpose="fanwise prune") as opened:
        running = {
            r.id for r in opened.runs(2**31) if r.status == "running" and process_alive(r.pid)
        }
        before = time.time() - older_than if older_than is not None else None
        done = prune(opened, before=before, keep=keep, spare=running)
        path = opened.path
    click.echo(
        f"fanwise: pruned {done.runs} runs ({done.calls:,} calls) from {path}: "
        f"{_mb(done.bytes_before)} -> {_mb(done.bytes_after)}",
        err=True,
    )


@click.command(name="export")
@click.argument("run_id", metavar="RUN", type=RUN_ID)
@click.option(
    "--out", "-o", type=click.Path(dir_okay=False), help="Write the JSONL here, not to stdout."
)
@journal_option()
def export_command(run_id: int, out: str | None, journal: str | None) -> None:
    """Write run RUN as JSONL: a first line for the run (its spec, status and totals), then one
    line per call with its request and latest outcome, with no API call."""
    with read_journal(journal, purpose="fanwise export RUN") as opened:
        if opened.run(run_id) is None:
            raise InputError(f"no run {run_id} in the journal {opened.path} (see: fanwise runs)")
        try:
            sink = open(out, "w", encoding="utf-8") if out else sys.stdout  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"--out {out}: cannot write: {exc.strerror}") from None
        try:
            sink.writelines(export_run(opened, run_id))
            sink.flush()
        finally:
            if sink is not sys.stdout:
                sink.close()


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
