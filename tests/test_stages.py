"""Staged workflows in Python: chain, map, route, vote and the failure policies, over the simulator.

Request counts come from the simulator (real loopback HTTP); the vote's differing answers come
from a scripted model, since the simulator answers one prompt the same way every time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fanwise.engine import Engine
from fanwise.journal import Journal, JournalStore
from fanwise.models.fast import FastOpenAIModel
from fanwise.outcome import ErrorKind, Fulfilled, Rejected
from fanwise.prices import load_prices
from fanwise.retry import NoWait, RetryPolicy
from fanwise.simulator import Simulator
from fanwise.simulator.config import Latency
from fanwise.stages import Stage, StageError, StageStatus, Status, Workflow, run_stages
from tests.scripted import Reply, ScriptedModel

DISTRICTS = {
    "type": "object",
    "properties": {
        "districts": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}
    },
    "required": ["districts"],
}
THREE_STAGES = Workflow(
    (
        Stage("outline", prompt="List three districts of Lyon.", schema=DISTRICTS),
        Stage("details", map="outline.districts", prompt="Describe district {index}: {item}"),
        Stage("guide", prompt="Write a guide to Lyon from these notes:\n{details}"),
    )
)


def engine_on(simulator: Simulator, store: Any = None, retries: int = 0) -> Engine:
    model = FastOpenAIModel(api_key="k", base_url=simulator.base_url)
    return Engine(model, store=store, sleep=NoWait(), retry=RetryPolicy(retries=retries))


async def close(engine: Engine) -> None:
    await engine.model.aclose()


def journal_store(path: Path, *, cache: bool = False) -> tuple[Journal, JournalStore]:
    journal = Journal.open(path)
    run_id = journal.start_run("stages", "t", {}, endpoint="sim", total=None)
    store = JournalStore(journal, run_id, prices=load_prices(), endpoint="sim", cache=cache)
    return journal, store


async def test_three_stages_send_one_plus_three_plus_one_and_a_cached_rerun_sends_none(
    simulator: Simulator, tmp_path: Path
) -> None:
    """A list of three, a map over it and a final stage: 5 requests; again with cache: 0."""
    texts = []
    for cache in (False, True):
        journal, store = journal_store(tmp_path / "j.db", cache=cache)
        engine = engine_on(simulator, store)
        result = await run_stages(THREE_STAGES, engine)
        await close(engine)
        journal.close()
        assert result.status is Status.COMPLETE, result.reason
        assert result.stage("details").detail["width"] == 3
        texts.append(result.text)
        if not cache:
            assert simulator.stats().requests == 5
            guide = json.loads(simulator.received[-1][1])["input"]
            assert "[details.1]" in json.dumps(guide) and "[details.3]" in json.dumps(guide)
            simulator.reset()
    assert simulator.stats().requests == 0, "the cached re-run sent requests"
    assert texts[0] == texts[1]


async def test_a_route_runs_only_the_chosen_branch(simulator: Simulator) -> None:
    """The route reads the enum the classifier answered and only that branch's stage is sent."""
    kind = {
        "type": "object",
        "properties": {"kind": {"type": "string", "enum": ["history", "food"]}},
        "required": ["kind"],
    }
    workflow = Workflow(
        (
            Stage("classify", prompt="Is this about history or food? Lyon", schema=kind),
            Stage("pick", route="classify.kind", branches={"history": ["past"], "food": ["meal"]}),
            Stage("past", prompt="HISTORY: tell the history of Lyon"),
            Stage("meal", prompt="FOOD: describe the food of Lyon"),
            Stage("final", prompt="Polish this: {past}{meal}"),
        )
    )
    engine = engine_on(simulator)
    result = await run_stages(workflow, engine)
    await close(engine)
    chosen = result.stage("pick").value
    assert chosen in ("history", "food")
    ran, skipped = ("past", "meal") if chosen == "history" else ("meal", "past")
    assert result.stage(ran).status is StageStatus.FULFILLED
    assert result.stage(skipped).status is StageStatus.NOT_CHOSEN
    prompts = simulator.stats().attempts
    assert simulator.stats().requests == 3
    assert not any(p.startswith("HISTORY" if skipped == "past" else "FOOD") for p in prompts)
    assert result.status is Status.COMPLETE


async def test_a_route_on_an_unknown_value_fails_that_stage_clearly(simulator: Simulator) -> None:
    """A value with no branch fails the route stage (not a crash), and its branches are skipped."""
    workflow = Workflow(
        (
            Stage("classify", prompt="Pick one: Lyon"),
            Stage("pick", route="classify", branches={"history": ["past"]}, required=True),
            Stage("past", prompt="tell the history"),
        )
    )
    engine = engine_on(simulator)
    result = await run_stages(workflow, engine)
    await close(engine)
    route = result.stage("pick")
    assert route.status is StageStatus.FAILED
    assert route.reason is not None and "not one of its branches (history)" in route.reason
    assert result.status is Status.NO_RESULT
    assert result.reason is not None and "required stage 'pick' failed" in result.reason
    assert simulator.stats().requests == 1


async def test_a_failed_route_that_is_not_required_skips_its_branches_and_says_why(
    simulator: Simulator,
) -> None:
    """Without required, the route's branch stages are skipped (not 'not chosen'), with why."""
    workflow = Workflow(
        (
            Stage("classify", prompt="Pick one: Lyon"),
            Stage("pick", route="classify", branches={"history": ["past"]}),
            Stage("past", prompt="tell the history"),
            Stage("after", prompt="a closing line"),
        )
    )
    engine = engine_on(simulator)
    result = await run_stages(workflow, engine)
    await close(engine)
    past = result.stage("past")
    assert past.status is StageStatus.SKIPPED
    assert past.reason == "its route 'pick' chose no branch"
    assert result.stage("after").status is StageStatus.FULFILLED
    assert result.status is Status.PARTIAL


async def test_vote_five_with_a_majority_pick_returns_the_majority_and_its_tally() -> None:
    """Five samples answering A, B, A, C, A: the stage's value is A and the tally is 3/1/1."""
    model = ScriptedModel()
    answers = ["A", "B", "A", "C", "A"]
    model.enqueue("Which city? Answer as JSON.", *(Reply(json.dumps({"city": a})) for a in answers))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    workflow = Workflow(
        (
            Stage(
                "best",
                prompt="Which city? Answer as JSON.",
                vote=5,
                pick="majority:city",
                schema=schema,
            ),
        )
    )
    result = await run_stages(workflow, Engine(model, concurrency=1))
    best = result.stage("best")
    assert best.value == {"city": "A"}
    assert best.detail["tally"] == {"A": 3, "B": 1, "C": 1}
    assert len(model.history) == 5
    assert len({b.id for b in best.branches}) == 5


def policy_map(**policy: Any) -> Workflow:
    return Workflow(
        (
            Stage("outline", prompt="List three districts of Lyon.", schema=DISTRICTS),
            Stage("details", map="outline.districts", prompt="District {index}: {item}", **policy),
            Stage("guide", prompt="Guide from:\n{details}"),
        )
    )


async def test_settled_goes_on_with_two_of_three(simulator: Simulator) -> None:
    """Under settled, one failed item leaves a partial map stage and a final stage from two."""
    simulator.script("District 2:", ["500"])
    engine = engine_on(simulator)
    result = await run_stages(policy_map(), engine)
    await close(engine)
    details = result.stage("details")
    assert details.status is StageStatus.PARTIAL
    assert len(details.value) == 2
    assert result.status is Status.PARTIAL
    guide_prompt = json.dumps(json.loads(simulator.received[-1][1]))
    assert "[details.2]" in guide_prompt and "failed: no answer" in guide_prompt


async def test_quorum_three_fails_the_stage_and_says_which_and_why(simulator: Simulator) -> None:
    """Under quorum = 3, two answers fail the stage; the reason names the failed item's error."""
    simulator.script("District 2:", ["500"])
    engine = engine_on(simulator)
    result = await run_stages(policy_map(quorum=3), engine)
    await close(engine)
    details = result.stage("details")
    assert details.status is StageStatus.FAILED
    assert details.reason is not None
    assert "2 of 3 answers arrived, fewer than quorum 3" in details.reason
    assert "details.2" in details.reason and "server" in details.reason
    assert result.stage("guide").status is StageStatus.SKIPPED
    assert result.status is Status.NO_RESULT
    assert result.reason is not None and "'guide'" in result.reason
    assert simulator.stats().requests == 4


async def test_policy_all_cancels_the_siblings(start_simulator: Any) -> None:
    """Under all, the first failure cancels the items still running; they settle as cancelled."""
    simulator = await start_simulator(latency=Latency.fixed(2.0))
    simulator.script("District 2:", ["500"], latency=0.0)
    simulator.script("List three", ["ok"], latency=0.0)
    engine = engine_on(simulator)
    result = await run_stages(policy_map(policy="all"), engine)
    await close(engine)
    details = result.stage("details")
    assert details.status is StageStatus.FAILED
    kinds = sorted(
        b.outcome.kind.value for b in details.branches if isinstance(b.outcome, Rejected)
    )
    assert kinds == ["cancelled", "cancelled", "server"]
    assert details.reason is not None and "cancelled" in details.reason


def test_a_bad_workflow_is_refused_before_any_call() -> None:
    """A placeholder that names no earlier stage is a StageError naming the stage."""
    with pytest.raises(StageError, match=r"stage 'b': \{later\} is not an earlier stage"):
        Workflow((Stage("b", prompt="uses {later}"), Stage("later", prompt="x")))
    with pytest.raises(StageError, match=r"map = 'nowhere\.x' does not name an earlier stage"):
        Workflow((Stage("m", map="nowhere.x", prompt="{item}"),))


def test_a_workflow_round_trips_through_its_dict() -> None:
    """to_dict / from_dict keep every stage (the journal's spec, for a resume)."""
    again = Workflow.from_dict(json.loads(json.dumps(THREE_STAGES.to_dict())))
    assert again.to_dict() == THREE_STAGES.to_dict()
    assert [s.kind for s in again.stages] == ["prompt", "map", "prompt"]
    assert isinstance(Fulfilled, type) and ErrorKind.CANCELLED.value == "cancelled"


async def test_fanwise_arun_records_a_staged_run_and_a_cached_rerun_reuses_every_call(
    tmp_path: Path,
) -> None:
    """``fanwise.arun`` with a journal records each call; again with cache, none is sent."""
    import fanwise
    from fanwise import OfflineSettings

    offline = OfflineSettings(latency=(0.0, 0.0))
    path = tmp_path / "journal.db"
    first = await fanwise.arun(THREE_STAGES, provider="offline", offline=offline, journal=path)
    again = await fanwise.arun(
        THREE_STAGES, provider="offline", offline=offline, journal=path, cache=True
    )
    assert first.status is Status.COMPLETE and first.text == again.text
    assert again.to_dict()["stats"]["cached"] == 5
    journal = Journal.open(path)
    assert [run.kind for run in journal.runs()] == ["stages", "stages"]
    journal.close()


async def test_a_vote_across_models_asks_each_model_once_and_a_judge_picks() -> None:
    """models = [a, b, c] sends one call per model; a judge gets every candidate by id."""
    model = ScriptedModel()
    workflow = Workflow(
        (
            Stage(
                "best",
                prompt="Name a river.",
                models=("m-a", "m-b", "m-c"),
                judge="Pick the best answer.",
            ),
        )
    )
    result = await run_stages(workflow, Engine(model))
    asked = [r.model for r in model.history[:3]]
    assert sorted(asked) == ["m-a", "m-b", "m-c"]
    judge = model.history[-1].prompt
    assert judge.startswith("Pick the best answer.")
    assert all(f"[best.{n}]" in judge for n in (1, 2, 3))
    best = result.stage("best")
    assert best.value == f"answer to {judge}"
    assert best.detail == {"judged": 3}


async def test_a_resumed_vote_keeps_the_samples_already_answered(
    simulator: Simulator, tmp_path: Path
) -> None:
    """Each vote sample has its own key: the journal answers all three on a second run."""
    workflow = Workflow((Stage("best", prompt="Pick a district of Lyon.", vote=3),))
    for cache in (False, True):
        journal, store = journal_store(tmp_path / "j.db", cache=cache)
        engine = engine_on(simulator, store)
        result = await run_stages(workflow, engine)
        await close(engine)
        journal.close()
        assert result.stage("best").detail["tally"] == {result.stage("best").value: 3}
    assert simulator.stats().requests == 3


async def test_the_last_stage_streams_its_text_to_on_delta() -> None:
    """With on_delta, the final prompt stage's text arrives in pieces that add up to it."""
    from fanwise import OfflineModel, OfflineSettings

    pieces: list[str] = []
    engine = Engine(OfflineModel(OfflineSettings(latency=(0.0, 0.0))))
    result = await run_stages(THREE_STAGES, engine, on_delta=pieces.append)
    assert result.status is Status.COMPLETE
    assert len(pieces) > 1 and "".join(pieces) == result.text


async def test_the_deadline_bounds_every_stage_the_streamed_one_too() -> None:
    """A run deadline cuts a slow streamed last stage: it fails and says the deadline passed."""
    model = ScriptedModel()
    model.enqueue("slow", Reply("late", delay=5.0))
    workflow = Workflow((Stage("a", prompt="quick"), Stage("b", prompt="slow")))
    result = await run_stages(workflow, Engine(model), deadline=0.2, on_delta=lambda _: None)
    assert result.stage("a").status is StageStatus.FULFILLED
    assert result.stage("b").status is StageStatus.FAILED
    assert result.stage("b").reason == "the deadline passed while it ran"
    assert result.status is Status.NO_RESULT
