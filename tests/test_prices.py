"""Prices and the cost budget: the arithmetic, the table and its overrides, and --max-cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from fanwise import Call, Engine, Fulfilled, Rejected, Request
from fanwise.budget import Budget, BudgetExceeded
from fanwise.models.base import Usage
from fanwise.prices import Price, PriceError, PriceTable, builtin_prices, format_usd, load_prices
from tests.scripted import ScriptedModel


def test_cost_counts_cached_input_at_its_own_rate() -> None:
    """Cached tokens are part of the input and are billed at the cached rate."""
    price = Price(input=2.0, output=8.0, cached_input=0.5)
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000, cached_tokens=400_000)
    assert price.cost(usage) == pytest.approx(0.6 * 2.0 + 0.4 * 0.5 + 0.5 * 8.0)


def test_a_dated_snapshot_is_priced_as_its_longest_listed_prefix() -> None:
    """gpt-5-mini-2025-08-07 is gpt-5-mini, not gpt-5; gpt-5.9 is not gpt-5; offline is free."""
    table = builtin_prices()
    assert table.price("gpt-5-mini-2025-08-07") == table.price("gpt-5-mini")
    assert table.price("gpt-5-mini") != table.price("gpt-5")
    assert table.price("gpt-5.9") is None
    assert table.cost("offline/gpt-5", Usage(1000, 1000)) == 0.0
    assert table.taken, "the table says when it was taken"


def test_a_user_table_is_laid_over_the_builtin_one(tmp_path: Path) -> None:
    """A user file adds and corrects entries; the others stay; a missing file is ignored."""
    user = tmp_path / "prices.toml"
    user.write_text('taken = "today"\n[models]\n"gpt-5" = { input = 9, output = 99 }\n')
    table = load_prices(user, tmp_path / "missing.toml")
    assert table.price("gpt-5") == Price(9.0, 99.0)
    assert table.price("gpt-4o") == builtin_prices().price("gpt-4o")
    assert table.taken == "today"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models", "not valid TOML"),
        ('[models]\n"m" = { input = 1 }', "needs input and output prices"),
        ('[models]\n"m" = { input = "1", output = 2 }', "input must be a number"),
        ('[models]\n"m" = { input = -1, output = 2 }', "must be 0 or more"),
        ('[models]\n"m" = { input = 1, output = 2, cheap = 1 }', "unknown field 'cheap'"),
    ],
)
def test_a_bad_price_file_names_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    """Each mistake in a price file is reported with the file's name."""
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PriceError, match=message) as info:
        load_prices(path)
    assert str(path) in str(info.value)


def test_dollars_are_formatted_for_people() -> None:
    """Zero is $0, cents show four decimals, dollars two, unknown is $?."""
    assert [format_usd(x) for x in (0, 0.00421, 12.345, None)] == ["$0", "$0.0042", "$12.35", "$?"]
    assert [format_usd(x) for x in (0.00000123, -0.75, -2.5)] == ["<$0.0001", "-$0.7500", "-$2.50"]


async def test_the_budget_stops_launching_calls_before_it_would_be_passed() -> None:
    """Calls run while they fit; then every later call is refused with a budget message."""
    prices = PriceTable({"m": Price(input=1000.0, output=1000.0)})
    budget = Budget(0.05, prices)
    model = ScriptedModel()
    engine = Engine(model, concurrency=1, admit=budget.admit, observer=budget)
    requests = [Request.text(f"q{n}", "m", max_output_tokens=5) for n in range(20)]
    outcomes = await engine.run([Call(r) for r in requests])
    sent = len(model.history)
    assert 0 < sent < 20
    assert all(isinstance(o, Fulfilled) for o in outcomes[:sent])
    refused = outcomes[sent:]
    assert all(isinstance(o, Rejected) and isinstance(o.error, BudgetExceeded) for o in refused)
    assert isinstance(refused[0], Rejected)
    assert "budget of $0.0500 would be passed" in refused[0].message
    assert refused[0].kind == "cancelled" and not refused[0].attempts
    assert budget.spent <= 0.05 and budget.refused == len(refused)
    assert budget.spent == pytest.approx(sent * (10 + 5) * 1000 / 1e6)


async def test_a_budget_cannot_bound_an_unpriced_model_so_it_refuses() -> None:
    """A model with no price is refused rather than run unbounded."""
    budget = Budget(10.0, PriceTable({}))
    model = ScriptedModel()
    [outcome] = await Engine(model, admit=budget.admit, observer=budget).run(
        [Call(Request.text("q", "mystery"))]
    )
    assert isinstance(outcome, Rejected) and "'mystery' has no price" in outcome.message
    assert not model.history


async def test_an_unpriced_call_is_refused_alone() -> None:
    """A refused unpriced call does not stop the priced calls after it."""
    budget = Budget(10.0, PriceTable({"m": Price(1.0, 1.0)}))
    model = ScriptedModel()
    engine = Engine(model, concurrency=1, admit=budget.admit, observer=budget)
    outcomes = await engine.run([Call(Request.text("a", "mystery")), Call(Request.text("b", "m"))])
    assert [o.status for o in outcomes] == ["rejected", "fulfilled"]
    assert not budget.stopped and budget.refused == 1


async def test_calls_in_flight_count_against_the_budget() -> None:
    """With many calls in flight, the estimates of the running ones hold back new launches."""
    prices = PriceTable({"m": Price(input=0.0, output=1000.0)})
    budget = Budget(0.0105, prices)  # room for ~2 calls of 5 output tokens at $0.005
    model = ScriptedModel()
    engine = Engine(model, concurrency=8, admit=budget.admit, observer=budget)
    await engine.run([Call(Request.text(f"q{n}", "m", max_output_tokens=5)) for n in range(8)])
    assert len(model.history) == 2, "the third launch would pass the budget while two run"


def test_claude_and_gemini_models_are_priced_with_their_cache_reads() -> None:
    """Dated Claude snapshots find their family's price; Anthropic's cache reads cost a tenth."""
    from fanwise.models.anthropic_bodies import messages_usage
    from fanwise.prices import builtin_prices

    table = builtin_prices()
    usage = messages_usage(
        {"input_tokens": 1_000_000, "cache_read_input_tokens": 1_000_000, "output_tokens": 0}
    )
    assert table.cost("claude-sonnet-4-5-20250929", usage) == 3.00 + 0.30
    assert table.price("claude-opus-4-1-20250805") != table.price("claude-opus-4-5")
    assert table.price("gemini-2.5-flash-lite") != table.price("gemini-2.5-flash")
    assert table.price("gemini-2.5-pro") is not None


# A Message as the Messages API sends it when a request writes a prompt cache (5-minute TTL) and
# reads another: Anthropic reports both cache counts apart from ``input_tokens``.
CACHE_WRITING_MESSAGE = b"""{
  "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-5-20250929",
  "content": [{"type": "text", "text": "Kyoto's temples, in three lines."}],
  "stop_reason": "end_turn",
  "stop_sequence": null,
  "usage": {
    "input_tokens": 21,
    "cache_creation_input_tokens": 188086,
    "cache_read_input_tokens": 4000,
    "cache_creation": {"ephemeral_5m_input_tokens": 188086, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 393,
    "service_tier": "standard"
  }
}"""


def test_anthropic_cache_writes_cost_a_quarter_more_than_input() -> None:
    """A recorded Message's cache writes are priced at the cache_write rate (1.25x input), its
    reads at the cached rate, the rest at input; a journaled usage keeps the writes."""
    import json

    from fanwise.models.anthropic_bodies import made_message, message_completion

    completion = message_completion(json.loads(CACHE_WRITING_MESSAGE), CACHE_WRITING_MESSAGE, {})
    usage = completion.usage
    assert (usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens) == (
        21 + 188086 + 4000,
        4000,
        188086,
    )
    expected = (21 * 3.00 + 188086 * 3.75 + 4000 * 0.30 + 393 * 15.00) / 1e6
    assert builtin_prices().cost(completion.model, usage) == pytest.approx(expected)
    assert Usage.from_dict(usage.to_dict()) == usage
    assert made_message("x", usage, "m", "1")["usage"] == {
        "input_tokens": 21,
        "cache_creation_input_tokens": 188086,
        "cache_read_input_tokens": 4000,
        "output_tokens": 393,
    }


def test_cache_write_defaults_to_a_quarter_over_input_and_leaves_openai_alone(
    tmp_path: Path,
) -> None:
    """An entry without cache_write prices writes at 1.25x its input; a usage with no writes (all
    OpenAI's) costs what it did, and its JSON has no cache_write_tokens key."""
    user = tmp_path / "prices.toml"
    user.write_text('[models]\n"claude-x" = { input = 2, cache_write = 3, output = 10 }\n')
    assert load_prices(user).price("claude-x") == Price(2.0, 10.0, None, 3.0)
    writes = Usage(input_tokens=1_000_000, cache_write_tokens=1_000_000)
    assert Price(input=4.0, output=8.0).cost(writes) == pytest.approx(5.0)
    openai = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_tokens=500_000)
    assert builtin_prices().cost("gpt-5", openai) == pytest.approx(0.5 * 1.25 + 0.5 * 0.125 + 10)
    assert "cache_write_tokens" not in openai.to_dict()
