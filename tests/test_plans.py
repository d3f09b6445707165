"""Plan files: variables filled in, and every mistake reported as file:line: problem."""

from __future__ import annotations

from pathlib import Path

import pytest

import fanwise
from fanwise import PlanError, load_plan
from fanwise.plans import builtin_plans

GOOD = """\
title = "brief"
topic = "{city} in {season}"

[variables]
city = { help = "a city" }
season = "spring"

[research]
questions = [
    "What to see in {city}?",
    "What to eat in {city} in {season}?",
]

[synthesis]
instructions = "Write a brief about {city}."

[model]
name = "gpt-5-mini"
reasoning_effort = "low"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, **variables: str) -> str:
    with pytest.raises(PlanError) as caught:
        load_plan(write(tmp_path, text), variables)
    return str(caught.value)


def test_the_travel_workflow_is_a_builtin_plan() -> None:
    """`travel` ships in the package and asks about attractions, transportation and culture."""
    assert "travel" in builtin_plans()
    loaded = load_plan("travel", {"destination": "Kyoto"})
    questions = " ".join(loaded.plan.texts).lower()
    assert len(loaded.plan.questions) == 3
    assert all(w in questions for w in ("attractions", "transportation", "cultur"))
    assert loaded.plan.topic == "Kyoto" and "Kyoto" in loaded.plan.synthesis_instructions
    assert loaded.model == {"reasoning_effort": "minimal"}


def test_variables_are_filled_and_defaults_apply(tmp_path: Path) -> None:
    """Given variables fill the templates; a declared default fills the rest."""
    loaded = load_plan(write(tmp_path, GOOD), {"city": "Lyon"})
    assert loaded.plan.topic == "Lyon in spring"
    assert loaded.plan.questions[1] == "What to eat in Lyon in spring?"
    assert loaded.plan.synthesis_instructions == "Write a brief about Lyon."
    assert loaded.model == {"model": "gpt-5-mini", "reasoning_effort": "low"}


def test_a_missing_required_variable_is_named(tmp_path: Path) -> None:
    """No value for a variable without default: the error names it, in words and as data."""
    with pytest.raises(PlanError) as caught:
        load_plan(write(tmp_path, GOOD))
    assert "needs a value for city" in str(caught.value)
    assert caught.value.missing == ("city",)
    assert "--set" not in str(caught.value)  # the library names no CLI flag


def test_an_unknown_variable_in_a_question_names_its_line(tmp_path: Path) -> None:
    """A question using an undeclared {variable} is reported at that question's line."""
    text = GOOD.replace("What to eat in {city}", "What to eat in {town}")
    message = error_of(tmp_path, text, city="Lyon")
    assert message.startswith(f"{tmp_path / 'plan.toml'}:11: ")
    assert "{town}" in message and "not a declared variable" in message


def test_a_misspelt_key_gets_a_suggestion_and_a_line(tmp_path: Path) -> None:
    """`questons` is unknown; the error points at its line and suggests `questions`."""
    message = error_of(tmp_path, GOOD.replace("questions = [", "questons = ["), city="x")
    assert ":9: unknown key 'questons' in [research]; did you mean 'questions'?" in message


def test_broken_toml_reports_the_parser_line(tmp_path: Path) -> None:
    """A TOML syntax error keeps its line number and drops the parser's noise."""
    message = error_of(tmp_path, GOOD.replace('season = "spring"', "season = spring"))
    assert ":6: not valid TOML" in message


def test_wrong_types_and_values_are_refused(tmp_path: Path) -> None:
    """An empty question list or a bad reasoning effort is an error at its line."""
    assert "non-empty list" in error_of(tmp_path, 'topic = "x"\n[research]\nquestions = []\n')
    bad_effort = GOOD.replace('reasoning_effort = "low"', 'reasoning_effort = "max"')
    assert ":19: reasoning_effort must be one of" in error_of(tmp_path, bad_effort, city="x")


def test_setting_an_undeclared_variable_is_an_error(tmp_path: Path) -> None:
    """A variable the plan does not have is a typo until proven otherwise."""
    with pytest.raises(PlanError) as caught:
        load_plan(write(tmp_path, GOOD), {"ctiy": "x"})
    assert "variable 'ctiy': the plan has no such variable" in str(caught.value)
    assert caught.value.unknown == "ctiy"


def test_a_missing_file_lists_the_builtin_plans(tmp_path: Path) -> None:
    """An unknown plan path says so and names the plans that do exist."""
    with pytest.raises(PlanError, match=r"no such plan file.*travel"):
        load_plan(tmp_path / "nope.toml")


def test_fanwise_run_takes_a_loaded_plan_with_its_model_table(tmp_path: Path) -> None:
    """fanwise.run(load_plan(...)) runs the plan with its [model] table, as `fanwise run` does."""
    travel = fanwise.run(load_plan("travel", {"destination": "Kyoto"}), provider="offline")
    assert travel.status.value == "complete"
    path = tmp_path / "plan.toml"
    path.write_text(
        'topic = "Kyoto"\n[research]\nquestions = ["Which temples?"]\n'
        '[model]\nname = "plan-model"\n'
    )
    assert fanwise.run(load_plan(path), provider="offline").to_dict()["model"] == "plan-model"
    with pytest.raises(TypeError, match="load_plan"):
        fanwise.run("travel", provider="offline")  # type: ignore[arg-type]
