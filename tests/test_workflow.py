"""The two phases: research in parallel, then one synthesis told what is missing."""

from __future__ import annotations

from fanwise import (
    Completion,
    Engine,
    Fulfilled,
    ModelSettings,
    OfflineModel,
    OfflineSettings,
    Plan,
    Status,
    run_workflow,
)
from fanwise.outcome import AuthError, BadRequest
from fanwise.workflow import Answer, synthesis_prompt
from tests.scripted import Reply, ScriptedModel

PLAN = Plan(topic="Kyoto", questions=("sights?", "transport?", "culture?"), title="travel guide")


def synthesis_requests(model: ScriptedModel) -> list[str]:
    return [
        r.prompt for r in model.history if r.prompt.startswith(PLAN.synthesis_instructions[:20])
    ]


async def test_all_answers_make_a_complete_result() -> None:
    """Three answers, one synthesis call that sees all three: status complete."""
    model = ScriptedModel()
    result = await run_workflow(PLAN, Engine(model))
    assert result.status is Status.COMPLETE and result.reason is None
    [prompt] = synthesis_requests(model)
    for question in PLAN.questions:
        assert f": {question}\nanswer to {question}" in prompt
    assert "## Missing" not in prompt


async def test_a_failed_question_makes_a_partial_result_that_names_the_gap() -> None:
    """The synthesis still runs with two answers and is told which question is missing."""
    model = ScriptedModel()
    model.enqueue("transport?", Reply(error=BadRequest("nope", status_code=400)))
    result = await run_workflow(PLAN, Engine(model))
    assert result.status is Status.PARTIAL
    [prompt] = synthesis_requests(model)
    assert "(2 of 3 questions answered)" in prompt
    assert "## Missing" in prompt and "- transport?" in prompt
    assert result.stats.fulfilled == 2 and result.stats.rejected == 1


async def test_when_everything_fails_no_synthesis_call_is_made() -> None:
    """All research failed: a clear reason, no synthesis request, no result."""
    model = ScriptedModel()
    for question in PLAN.texts:
        model.enqueue(question, Reply(error=AuthError("bad key", status_code=401)))
    result = await run_workflow(PLAN, Engine(model))
    assert result.status is Status.NO_RESULT and result.synthesis is None
    assert result.reason is not None and "all 3 research questions failed" in result.reason
    assert synthesis_requests(model) == []
    assert len(model.history) == 3


async def test_min_answers_is_a_quorum() -> None:
    """With --min-answers 3 and one failure, no synthesis is made and the reason says why."""
    model = ScriptedModel()
    model.enqueue("sights?", Reply(error=BadRequest("nope", status_code=400)))
    result = await run_workflow(PLAN, Engine(model), min_answers=3)
    assert result.status is Status.NO_RESULT
    assert result.reason is not None and "only 2 of 3 answers arrived" in result.reason
    assert synthesis_requests(model) == []


async def test_fail_fast_mode_aborts_and_names_the_failure() -> None:
    """Mode 'all': the first failure aborts the run, and the reason names that question."""
    model = ScriptedModel()
    model.enqueue("sights?", Reply(delay=5))
    model.enqueue("culture?", Reply(error=BadRequest("no", status_code=400), delay=0.01))
    result = await run_workflow(PLAN, Engine(model), fail_fast=True)
    assert result.status is Status.NO_RESULT and result.synthesis is None
    assert result.reason is not None and "'culture?' failed (bad_request" in result.reason
    kinds = [a.outcome.to_dict().get("error", {}).get("kind") for a in result.answers]
    assert kinds == ["cancelled", None, "bad_request"]


async def test_a_failed_synthesis_keeps_the_research() -> None:
    """When the synthesis call itself fails, the result holds every answer and says why."""
    model = ScriptedModel()
    plan = Plan("Kyoto", ("a?",), synthesis_instructions="SYNTH")
    answered = [Answer("a?", Fulfilled(Completion("answer to a?")))]
    model.enqueue(synthesis_prompt(plan, answered), Reply(error=BadRequest("x", status_code=400)))
    result = await run_workflow(plan, Engine(model))
    assert result.status is Status.NO_RESULT and result.reason is not None
    assert "synthesis call failed" in result.reason
    assert result.answers[0].outcome.ok and result.synthesis is not None


async def test_research_runs_in_parallel_on_the_offline_model() -> None:
    """The research phase's wall time is that of the slowest call, not the sum."""
    model = OfflineModel(OfflineSettings(seed=1, latency=(0.05, 0.2)))
    result = await run_workflow(PLAN, Engine(model), settings=ModelSettings(model="gpt-5"))
    slowest = max(a.outcome.latency for a in result.answers)
    assert result.stats.wall_time < slowest + 0.1
    assert result.stats.sum_of_latencies > result.stats.wall_time
    assert result.stats.service_time > result.stats.wall_time and result.stats.queue_time < 0.01
    assert result.text is not None and "Kyoto" in result.text


async def test_json_shape_holds_questions_synthesis_and_stats() -> None:
    """to_dict has the topic, each question's status/answer/latency/attempts/usage, and stats."""
    model = ScriptedModel()
    model.enqueue("culture?", Reply(error=BadRequest("no", status_code=400)))
    data = (await run_workflow(PLAN, Engine(model))).to_dict()
    assert data["topic"] == "Kyoto" and data["status"] == "partial"
    first, _, failed = data["questions"]
    assert set(first) >= {"question", "status", "answer", "latency", "attempts", "usage"}
    assert failed["error"] == {"kind": "bad_request", "message": "no"}
    assert data["synthesis"]["status"] == "fulfilled"
    assert set(data["stats"]) >= {
        "fulfilled",
        "rejected",
        "wall_time",
        "sum_of_latencies",
        "service_time",
        "queue_time",
        "speedup",
    }
