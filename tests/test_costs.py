"""Costs a user can trust: unpriced is unknown, not $0; --price prices it; --max-cost learns
from the calls that settled; a refusal's arithmetic adds up; 1-hour cache writes cost more."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanwise import Call, Request
from fanwise.budget import Budget, BudgetExceeded
from fanwise.events import CallSettled
from fanwise.models.anthropic_bodies import messages_usage
from fanwise.models.base import Completion, Usage
from fanwise.outcome import Attempt, Fulfilled
from fanwise.prices import (
    Price,
    PriceError,
    PriceTable,
    UsageHistory,
    builtin_prices,
    cost_text,
    estimate_cost,
    parse_price_flag,
)
from tests.conftest import SimulatorProcess
from tests.processes import run_fanwise

OPENAI = {"OPENAI_API_KEY": "test", "ANTHROPIC_API_KEY": None, "GEMINI_API_KEY": None,
          "GOOGLE_API_KEY": None, "OPENAI_BASE_URL": None, "FANWISE_MODEL": None}  # fmt: skip


def test_one_hour_cache_writes_cost_twice_input_and_five_minute_ones_one_and_a_quarter() -> None:
    """usage.cache_creation's 1-hour writes are priced at 2x input, the rest at 1.25x."""
    usage = messages_usage(
        {
            "input_tokens": 100,
            "cache_creation_input_tokens": 3000,
            "cache_read_input_tokens": 0,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 1000,
                "ephemeral_1h_input_tokens": 2000,
            },
            "output_tokens": 0,
        }
    )
    assert usage.cache_write_tokens == 3000 and usage.cache_write_1h_tokens == 2000
    price = builtin_prices().price("claude-sonnet-4-5")
    assert price is not None
    expected = (100 * 3.00 + 1000 * 3.75 + 2000 * 6.00) / 1e6
    assert price.cost(usage) == pytest.approx(expected)
    assert Usage.from_dict(usage.to_dict()) == usage, "journaled and read back whole"


def test_a_price_flag_is_read_and_a_bad_one_said() -> None:
    """--price MODEL=input=N,output=N is a Price; a malformed one is a PriceError naming it."""
    model, price = parse_price_flag("my-model=input=0.5,output=1.5,cached_input=0.05")
    assert model == "my-model" and price == Price(0.5, 1.5, 0.05)
    with pytest.raises(PriceError, match="--price"):
        parse_price_flag("my-model=input=cheap")
    assert cost_text(0.0, ["m"]) == "cost unknown for m (no price; see prices.toml or --price)"
    assert cost_text(0.25, ["m"]).startswith("$0.2500 + cost unknown for m")


def test_the_estimate_learns_a_high_percentile_of_what_calls_used() -> None:
    """No history: the request's cap (1,000 tokens without one); then the 90th percentile of
    the model's outputs, never above the cap."""
    price = Price(input=0.0, output=1.0)
    request = Request.text("Kyoto?", "m")
    history = UsageHistory()
    assert estimate_cost(price, request, history) == pytest.approx(1000 / 1e6)
    capped = Request.text("Kyoto?", "m", max_output_tokens=300)
    assert estimate_cost(price, capped, history) == pytest.approx(300 / 1e6)
    for tokens in [50] * 9 + [400]:
        history.add("m", Usage(output_tokens=tokens))
    assert estimate_cost(price, request, history) == pytest.approx(50 / 1e6)
    history.add("m", Usage(output_tokens=400))
    assert estimate_cost(price, request, history) == pytest.approx(400 / 1e6)
    assert estimate_cost(price, capped, history) == pytest.approx(300 / 1e6)


def _numbers(message: str) -> list[float]:
    return [float(x) for x in re.findall(r"\$([0-9.]+)", message)]


def test_a_refusal_is_a_sum_a_user_can_check() -> None:
    """spent + in flight + this call = total > limit, each number as shown."""
    prices = PriceTable({"m": Price(input=0.0, output=1.0)})
    budget = Budget(0.0025, prices)
    first, second = Call(Request.text("a", "m")), Call(Request.text("b", "m"))
    assert budget.admit(first) is None  # ~$0.001 (1,000 output tokens): fits
    budget.admit(second)
    with pytest.raises(BudgetExceeded) as refused:
        budget.admit(Call(Request.text("c", "m")))
    message = str(refused.value)
    assert "spent + " in message and " in flight + this call ~" in message
    _, spent, flight, this, total, limit = _numbers(message)
    assert spent + flight + this == pytest.approx(total) and total > limit == 0.0025


async def test_a_patient_budget_holds_a_call_until_the_one_in_flight_settles() -> None:
    """Live: with nothing learnt, one call goes alone; the next is held, then sent at the
    learnt (smaller) estimate once the first settles, instead of being refused."""
    prices = PriceTable({"m": Price(input=0.0, output=1.0)})
    budget = Budget(0.0005, prices, patient=True)  # less than the 1,000-token guess
    first, second = Call(Request.text("a", "m")), Call(Request.text("b", "m"))
    assert budget.admit(first) is None, "nothing in flight, nothing learnt: a probe"
    held = budget.admit(second)
    assert held is not None
    answer = Completion("x", usage=Usage(output_tokens=100), model="m")
    outcome = Fulfilled(answer, 0.1, 0.0, (Attempt(1, 0.0, 0.1),))
    budget(CallSettled(0, first.key, "a", outcome, 0.1))
    await asyncio.wait_for(held, 1)  # let go: $0.0001 spent + ~$0.0001 fits $0.0005
    assert budget.spent == pytest.approx(0.0001) and not budget.stopped


def _cost(stdout: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stdout)
    return data


def test_travel_with_max_cost_at_one_and_a_half_times_its_cost_completes(
    spawn_simulator: Callable[..., SimulatorProcess],
) -> None:
    """`travel Kyoto --max-cost` at 1.5x what the uncapped run cost sends every call."""
    sim = spawn_simulator()
    base = ["travel", "Kyoto", "--base-url", sim.base_url, "--no-journal", "--json"]
    free = run_fanwise(*base, env=OPENAI)
    assert free.returncode == 0, free.stderr
    spent = _cost(free.stdout)["cost"]["usd"]
    assert spent > 0
    capped = run_fanwise(*base, "--max-cost", f"{spent * 1.5:.6f}", env=OPENAI)
    assert capped.returncode == 0, capped.stderr
    result = _cost(capped.stdout)
    assert result["status"] == "complete"
    assert [q["status"] for q in result["questions"]] == ["fulfilled"] * 3
    assert result["cost"]["not_sent_for_budget"] == 0
    assert result["cost"]["usd"] == pytest.approx(spent)


def test_an_unpriced_model_costs_unknown_everywhere_and_price_prices_it(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """The summary, the JSON (usd null, the priced part beside), `fanwise runs` and the report
    say "cost unknown for my-model"; --price gives it a cost."""
    sim = spawn_simulator()
    journal = str(tmp_path / "j.db")
    base = ["research", "Kyoto", "-q", "Temples?", "--model", "my-model", "--api", "chat",
            "--base-url", sim.base_url, "--journal", journal]  # fmt: skip
    unknown = "cost unknown for my-model (no price; see prices.toml or --price)"
    plain = run_fanwise(*base, "--plain", env=OPENAI)
    assert plain.returncode == 0 and unknown in plain.stderr and "· $0\n" not in plain.stderr
    done = run_fanwise(*base, "--json", env=OPENAI)
    cost = _cost(done.stdout)["cost"]
    assert cost["usd"] is None and cost["priced_usd"] == 0 and cost["unknown"] == unknown
    runs = run_fanwise("runs", "--journal", journal)
    assert "unknown" in runs.stdout and unknown in runs.stdout
    report = tmp_path / "r.html"
    assert run_fanwise("report", "1", "-o", str(report), "--journal", journal).returncode == 0
    assert "cost unknown for my-model" in report.read_text(encoding="utf-8")
    priced = run_fanwise(*base, "--json", "--price", "my-model=input=1,output=2", env=OPENAI)
    assert _cost(priced.stdout)["cost"]["usd"] > 0


def test_a_bad_price_flag_and_a_bad_home_prices_file_say_what_to_fix(tmp_path: Path) -> None:
    """--price foo says what is wrong and the form, once; a bad $FANWISE_HOME/prices.toml is
    named as that file, not as a --prices flag the user did not pass."""
    ask = ("research", "T", "-q", "a", "--provider", "offline", "--no-journal")
    done = run_fanwise(*ask, "--price", "foo", env={"FANWISE_HOME": str(tmp_path)})
    assert done.returncode == 2
    assert "--price: --price" not in done.stderr
    assert "--price 'foo'" in done.stderr and "MODEL=input=N,output=N" in done.stderr
    (tmp_path / "prices.toml").write_text("broken [\n")
    done = run_fanwise(*ask, env={"FANWISE_HOME": str(tmp_path)})
    assert done.returncode == 2
    assert str(tmp_path / "prices.toml") in done.stderr and "--prices" not in done.stderr
