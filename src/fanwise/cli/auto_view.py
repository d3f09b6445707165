"""``--engine auto`` in the CLI: the ``--plan-only`` forecast and the closing line by path.

Wiring only: the forecast and the totals are ``fanwise.dispatch.deadline`` and
``fanwise.dispatch.paths``; this module gathers their inputs from the flags and the journal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import click

from fanwise.budget import Budget
from fanwise.calls import Call
from fanwise.cli.journal_read import journal_exists, read_journal
from fanwise.cli.session import Session, config_error
from fanwise.config import RunConfig
from fanwise.config.open import build_limiter, run_prices
from fanwise.dispatch.deadline import Forecast, forecast, live_estimate
from fanwise.dispatch.paths import PathTotals, path_totals
from fanwise.factory import ConfigError
from fanwise.limits import request_tokens
from fanwise.prices import format_usd


def plan_only(calls: Iterable[Call], config: RunConfig) -> Forecast:
    """The forecast for ``calls`` from what is known before any request; nothing is sent."""
    config = config.started()
    assert config.deadline_at is not None
    try:
        prices = run_prices(config)
    except ConfigError as exc:
        raise config_error(exc) from None
    budget = Budget(math.inf, prices)
    total, tokens, cost, priced = 0, 0, 0.0, 0
    for call in calls:
        total += 1
        tokens += request_tokens(call.request)
        estimate = budget.estimate(call)
        if estimate is not None:
            cost, priced = cost + estimate, priced + 1
    live = live_estimate(
        build_limiter(config),
        config.concurrency,
        tokens_per_call=tokens / total if total else 1000.0,
        default_latency=config.live_latency,
    )
    line_cost = cost / priced if priced else None
    prior: dict[str, Any] = {}
    known = _journal_pace(config)
    if known is not None and total:
        rate, batches = known
        prior = {
            "batch_seconds": total / rate,
            "basis": f"at the pace of the journal's last {batches} batches, {rate:.3g} lines/s",
        }
    left = config.deadline_at - time.time()
    return forecast(total, left, live, line_cost=line_cost, **prior)


def _journal_pace(config: RunConfig) -> tuple[float, int] | None:
    """The pace of the journal's recent batches; None without a journal (never made here)."""
    if not config.journal or not journal_exists(config.journal_path):
        return None
    from fanwise.batchapi.ledger import recent_pace  # the openai SDK: --plan-only only

    with read_journal(config.journal_path, purpose="--plan-only") as journal:
        return recent_pace(journal)


def show_forecast(plan: Forecast) -> None:
    for line in plan.lines():
        click.echo(line)


def totals(session: Session, dispatch: object = None) -> PathTotals | None:
    """The run's lines and cost by path, from the journal (a resumed run's first part too),
    and the switch (when and why) from the run's ``Auto`` dispatch."""
    config = session.opened.config
    if config.engine != "auto" or config.deadline_at is None:
        return None
    finished = time.time()
    if session.journal is None or session.run_id is None:
        return None
    rows = ((r.outcome, r.cost) for r in session.journal.latest_calls(session.run_id))
    found = path_totals(rows, config.deadline_at, finished)
    from fanwise.dispatch.auto import Auto  # loads the openai SDK: an auto run has it already

    if isinstance(dispatch, Auto):
        found.switch = dispatch.switch
        found.twice = dispatch.twice
    return found


def totals_line(found: PathTotals) -> str:
    lines, cost = found.lines, found.cost
    when = datetime.fromtimestamp(found.deadline).astimezone().strftime("%H:%M:%S")
    met = "met" if found.met else "missed"
    parts = [
        f"{lines['batch']} by the Batch API ({format_usd(cost['batch'])})",
        f"{lines['live']} live ({format_usd(cost['live'])})",
    ]
    if lines["journal"]:
        parts.append(f"{lines['journal']} from the journal")
    if lines["failed"]:
        parts.append(f"{lines['failed']} failed")
    if found.twice:
        parts.append(f"{found.twice} answered by both (the batch ran them out of order)")
    switched = ""
    if found.switch is not None:
        at = datetime.fromtimestamp(found.switch.at).astimezone().strftime("%H:%M:%S")
        switched = f"; switched to live at {at}"
    return (
        f"🧭 auto: {', '.join(parts)}; {format_usd(found.saved)} saved against all-live "
        f"({format_usd(found.all_live)}); deadline {when} {met}{switched}"
    )


__all__ = ["plan_only", "show_forecast", "totals", "totals_line"]
