"""Structured outputs end to end: schemas sent strict, answers validated, repaired, counted."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from fanwise import Engine
from fanwise.engine import Call
from fanwise.models.base import Endpoint, Request, Usage
from fanwise.models.fast import FastOpenAIModel
from fanwise.models.offline import OfflineModel, OfflineSettings
from fanwise.models.settings import ModelSettings
from fanwise.outcome import ErrorKind, Fulfilled, Rejected
from fanwise.retry import NoWait, RetryBudget
from fanwise.schemas import Schema, schema_of_body, to_strict
from fanwise.simulator import Simulator
from fanwise.structured import outcome_usage
from fanwise.workflow import Plan, run_workflow

ANSWER = {
    "title": "Answer",
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "confidence": {"type": "integer", "minimum": 0, "maximum": 10},
    },
    "required": ["summary", "confidence"],
}
QUESTIONS = ("Sights?", "Food?", "Secrets?")


class Sight(BaseModel):
    name: str
    stars: int


class Sights(BaseModel):
    sights: list[Sight]


async def fanwise_cli(*args: str, base_url: str, home: Path) -> tuple[int, str, str]:
    """The real command in a child process, while this loop keeps serving the simulator."""
    env = {**os.environ, "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": base_url}
    env["FANWISE_HOME"] = str(home)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fanwise",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def bodies(simulator: Simulator) -> list[dict[str, Any]]:
    return [json.loads(body) for _, body in simulator.received]


def asked_schema(body: dict[str, Any]) -> Any:
    endpoint = "chat.completions" if "messages" in body else "responses"
    return schema_of_body(endpoint, body)


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_the_issue_scenario_repairs_one_answer_and_refuses_another(
    simulator: Simulator, tmp_path: Path, api: str
) -> None:
    """A broken answer is fulfilled after 2 attempts, a refusal rejected after 1, all strict."""
    schema_file = tmp_path / "answer.schema.json"
    schema_file.write_text(json.dumps(ANSWER))
    simulator.script("Sights", ["schema"])
    simulator.script("Secrets", ["refuse"])
    code, out, err = await fanwise_cli(
        "research", "Kyoto", *[f"-q{q}" for q in QUESTIONS], "--schema", str(schema_file),
        "--json", "--api", api, "--report", str(tmp_path / "report.html"),
        base_url=simulator.base_url, home=tmp_path,
    )  # fmt: skip
    assert code == 4, err  # partial: one question failed
    data = json.loads(out)
    sights, food, secrets = data["questions"]
    assert (sights["status"], sights["attempts"]) == ("fulfilled", 2)
    assert set(sights["parsed"]) == {"summary", "confidence"}
    assert (food["status"], food["attempts"]) == ("fulfilled", 1)
    assert food["parsed"] == json.loads(food["answer"])
    assert (secrets["status"], secrets["attempts"]) == ("rejected", 1)
    assert secrets["error"]["kind"] == "refused"
    assert "refused" in err
    assert "refused" in (tmp_path / "report.html").read_text()
    research = [b for b in bodies(simulator) if "Topic: Kyoto" not in json.dumps(b)]
    assert len(research) == 4
    strict = to_strict(ANSWER)
    assert all(asked_schema(b) == strict for b in research)
    formats = [
        b["text"]["format"] if api == "responses" else b["response_format"] for b in research
    ]
    assert all(f["type"] == "json_schema" for f in formats)
    assert all((f if api == "responses" else f["json_schema"])["strict"] for f in formats)


async def test_the_repair_appends_the_bad_answer_and_the_error_and_no_repair_resends(
    simulator: Simulator,
) -> None:
    """The retry re-asks with the bad answer and its error; --no-repair sends the same body."""
    model = FastOpenAIModel(api_key="k", base_url=simulator.base_url)
    schema = Schema.of(ANSWER)
    for repair in (True, False):
        simulator.reset()
        simulator.script("Sights", ["schema"])
        engine = Engine(model, sleep=NoWait(), repair=repair)
        [outcome] = await engine.run([Call(Request.text("Sights?"), schema=schema)])
        assert isinstance(outcome, Fulfilled) and len(outcome.attempts) == 2
        first, second = (json.loads(body) for _, body in simulator.received[-2:])
        if repair:
            turns = second["input"]
            assert turns[0] == {"role": "user", "content": "Sights?"}
            assert turns[1]["role"] == "assistant" and turns[1]["content"] != ""
            assert "did not match the required JSON schema" in turns[2]["content"]
            assert "confidence" in turns[2]["content"] or "summary" in turns[2]["content"]
        else:
            assert first == second
        assert outcome.value.parsed is not None
    await model.aclose()


async def test_usage_and_cost_count_every_attempt(simulator: Simulator, tmp_path: Path) -> None:
    """The fulfilled outcome's usage is the sum of every answer's usage, broken ones included."""
    from fanwise.journal import Journal, JournalStore
    from fanwise.prices import load_prices

    model = FastOpenAIModel(api_key="k", base_url=simulator.base_url)
    simulator.script("Sights", ["schema", "schema"])
    simulator.script("Secrets", ["schema", "refuse"])
    journal = Journal.open(tmp_path / "journal.db")
    run_id = journal.start_run("workflow", "t", {}, endpoint="sim", total=2)
    prices = load_prices()
    store = JournalStore(journal, run_id, prices=prices, endpoint="sim")
    engine = Engine(model, sleep=NoWait(), store=store)
    calls = [Call(Request.text(q), schema=Schema.of(ANSWER)) for q in ("Sights?", "Secrets?")]
    fulfilled, refused = await engine.run(calls)
    await model.aclose()
    sent = [json.loads(body)["usage"] for body in simulator.sent]
    assert len(sent) == 5  # 3 answers for Sights, 2 for Secrets
    total = Usage(
        input_tokens=sum(u["input_tokens"] for u in sent),
        output_tokens=sum(u["output_tokens"] for u in sent),
    )
    assert isinstance(fulfilled, Fulfilled) and len(fulfilled.attempts) == 3
    assert isinstance(refused, Rejected) and refused.kind is ErrorKind.REFUSED
    assert len(refused.attempts) == 2
    both = outcome_usage(fulfilled) + outcome_usage(refused)
    assert (both.input_tokens, both.output_tokens) == (total.input_tokens, total.output_tokens)
    assert outcome_usage(refused).output_tokens > 0
    expected = prices.cost("gpt-5", both)
    assert expected is not None and expected > 0
    assert store.spent == pytest.approx(expected)
    rows = {r.key: r for r in journal.latest_calls(run_id)}
    refused_row = rows[calls[1].key].outcome
    assert isinstance(refused_row, Rejected) and refused_row.kind is ErrorKind.REFUSED
    journal.close()


async def test_the_run_retry_budget_bounds_the_repairs(simulator: Simulator) -> None:
    """With a retry budget of 1, two broken answers get one repair between them."""
    model = FastOpenAIModel(api_key="k", base_url=simulator.base_url)
    simulator.script("Sights", ["schema", "schema"])
    simulator.script("Food", ["schema", "schema"])
    engine = Engine(model, sleep=NoWait(), retry_budget=RetryBudget(1), concurrency=1)
    calls = [Call(Request.text(q), schema=Schema.of(ANSWER)) for q in ("Sights?", "Food?")]
    outcomes = await engine.run(calls)
    await model.aclose()
    assert [len(o.attempts) for o in outcomes] == [2, 1]
    assert all(isinstance(o, Rejected) and o.kind is ErrorKind.INVALID_RESPONSE for o in outcomes)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not JSON"),
        ('{"type": "objekt"}', "not a valid JSON Schema at type"),
        ('{"type": "array", "items": {"type": "string"}}', "an object at the top level"),
    ],
)
async def test_a_bad_schema_file_is_refused_before_any_call(
    simulator: Simulator, tmp_path: Path, content: str, reason: str
) -> None:
    """A schema file that is not a usable JSON Schema ends the run with exit 2, file and reason."""
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    for flag in ("--schema", "--synthesis-schema"):
        code, _, err = await fanwise_cli(
            "research", "Kyoto", "-q", "Sights?", flag, str(bad),
            base_url=simulator.base_url, home=tmp_path,
        )  # fmt: skip
        assert code == 2
        assert f"{flag} {bad}:" in err and reason in err
        assert "Traceback" not in err
    assert simulator.received == []


def test_python_research_with_a_pydantic_model_gives_instances() -> None:
    """A pydantic model as the schema gives validated instances; a dict schema gives dicts."""
    plan = Plan("Kyoto", ("Sights?", "Food?"), schema=Sights, synthesis_schema=ANSWER)
    model = OfflineModel(OfflineSettings(latency=(0.0, 0.0)))
    result = asyncio.run(run_workflow(plan, Engine(model), settings=ModelSettings()))
    for answer in result.answers:
        assert isinstance(answer.outcome, Fulfilled)
        assert isinstance(answer.outcome.value.parsed, Sights)
    assert isinstance(result.synthesis, Fulfilled)
    assert set(result.synthesis.value.parsed) == {"summary", "confidence"}
    data = result.to_dict()
    first = result.answers[0].outcome
    assert isinstance(first, Fulfilled)
    assert data["questions"][0]["parsed"] == first.value.parsed.model_dump()
    assert set(data["synthesis"]["parsed"]) == {"summary", "confidence"}


def test_a_plan_with_schemas_round_trips_through_its_journal_spec() -> None:
    """The journaled spec of a plan keeps its schemas, so a resumed run asks for the same ones."""
    from fanwise.journal.results import plan_from_spec

    plan = Plan(
        "Kyoto",
        ("Sights?", "Food?"),
        schema=ANSWER,
        question_schemas=(Sights, None),
        synthesis_schema=ANSWER,
    )
    again = plan_from_spec({"plan": json.loads(json.dumps(plan.to_dict()))})
    calls, twice = plan.research_calls(ModelSettings()), again.research_calls(ModelSettings())
    assert [c.key for c in calls] == [c.key for c in twice]
    assert calls[0].schema is not None and calls[0].schema.name == "Sights"
    assert calls[1].request.body["text"]["format"]["name"] == "Answer"


async def test_a_journaled_answer_is_parsed_again_on_resume(tmp_path: Path) -> None:
    """An answer reused from the journal comes back with its parsed value (a pydantic instance)."""
    from fanwise.journal import Journal, JournalStore
    from fanwise.prices import load_prices

    journal = Journal.open(tmp_path / "journal.db")
    run_id = journal.start_run("workflow", "t", {}, endpoint="offline", total=1)
    call = Call(Request.text("Sights?"), schema=Schema.of(Sights))
    model = OfflineModel(OfflineSettings(latency=(0.0, 0.0)))
    store = JournalStore(journal, run_id, prices=load_prices(), endpoint="offline")
    [first] = await Engine(model, store=store).run([call])
    again = JournalStore(journal, run_id, prices=load_prices(), endpoint="offline", resume=True)
    [second] = await Engine(model, store=again).run([call])
    journal.close()
    assert isinstance(first, Fulfilled) and isinstance(second, Fulfilled) and second.cached
    assert isinstance(second.value.parsed, Sights)
    assert second.value.parsed == first.value.parsed


def test_a_request_that_asks_for_its_own_format_is_left_as_written() -> None:
    """A body that already sets text.format keeps it; the schema only validates the answer."""
    own = {"type": "json_schema", "name": "mine", "schema": ANSWER, "strict": False}
    request = Request(
        Endpoint.RESPONSES, {"model": "gpt-5", "input": "hi", "text": {"format": own}}
    )
    call = Call(request, schema=Schema.of(ANSWER))
    assert call.request.body["text"]["format"] == own


PLAN = """title = "city"
topic = "Kyoto"
[research]
schema = "answer.schema.json"
questions = [
  "Sights?",
  { text = "Food?", schema = { type = "object", properties = { dish = { type = "string" } } } },
]
[synthesis]
schema = { type = "object", properties = { guide = { type = "string" } } }
"""


def test_a_plan_takes_schemas_inline_and_from_a_file_next_to_it(tmp_path: Path) -> None:
    """[research], a question table and [synthesis] each take a schema; a file is plan-relative."""
    from fanwise.plans import load_plan

    (tmp_path / "answer.schema.json").write_text(json.dumps(ANSWER))
    (tmp_path / "city.toml").write_text(PLAN)
    plan = load_plan(tmp_path / "city.toml").plan
    sights, food = plan.research_calls(ModelSettings())
    assert sights.schema is not None and sights.schema.json_schema == to_strict(ANSWER)
    assert food.schema is not None and list(food.schema.json_schema["properties"]) == ["dish"]
    assert plan.synthesis_schema is not None


@pytest.mark.parametrize(
    ("research", "synthesis", "error"),
    [
        ('schema = "missing.json"', "", "plan.toml:4: schema 'missing.json': cannot read it"),
        ("", 'schema = { type = "objekt" }', "plan.toml:7: schema: not a valid JSON Schema"),
        ("schema = 3", "", "plan.toml:4: schema must be a JSON Schema table or the name of"),
        ('schema = "bad.json"', "", "plan.toml:4: schema 'bad.json': not JSON"),
    ],
)
def test_a_plans_bad_schema_names_its_line(
    tmp_path: Path, research: str, synthesis: str, error: str
) -> None:
    """A schema a plan cannot use is refused as file:line: problem, before anything runs."""
    from fanwise.plans import PlanError, load_plan

    (tmp_path / "bad.json").write_text("{nope")
    text = f'topic = "Kyoto"\n[research]\nquestions = ["Sights?"]\n{research}\n\n[synthesis]\n'
    (tmp_path / "plan.toml").write_text(text + synthesis + "\n")
    with pytest.raises(PlanError) as caught:
        load_plan(tmp_path / "plan.toml")
    assert str(caught.value).startswith(str(tmp_path))
    assert error in str(caught.value)


def batch_lines() -> str:
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": to_strict(ANSWER)}}
    lines = [
        {
            "custom_id": q.strip("?").lower(),
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}]}
            | {"response_format": fmt},
        }
        for q in QUESTIONS
    ]
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.mark.parametrize(
    ("engine", "validate", "sights_attempts", "batches"),
    [("live", True, 2, 0), ("live", False, 1, 0), ("batch", True, 2, 2)],
)
def test_batch_validate_checks_each_line_against_its_own_schema(
    spawn_simulator: Any,
    tmp_path: Path,
    engine: str,
    validate: bool,
    sights_attempts: int,
    batches: int,
) -> None:
    """--validate retries a line whose answer broke its schema (live, or in a follow-up batch)."""
    from click.testing import CliRunner
    from openai import OpenAI

    from fanwise.cli import cli

    script = tmp_path / "script.json"
    rules = [{"match": "Sights", "faults": ["schema"]}, {"match": "Secrets", "faults": ["refuse"]}]
    script.write_text(json.dumps(rules))
    url = spawn_simulator("--script", str(script)).base_url
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(batch_lines())
    args = ["batch", str(source), "-o", str(out), "--engine", engine, "--batch-poll", "0.05"]
    args += ["--provider", "openai", "--base-url", url, "--retries", "2"]
    env = {"OPENAI_API_KEY": "test", "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}
    result = CliRunner().invoke(cli, [*args, *(["--validate"] if validate else [])], env=env)
    assert result.exit_code == 4, result.output  # partial: the refusal
    records = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    sights, food, secrets = records["sights"], records["food"], records["secrets"]
    assert sights["fanwise"]["attempts"] == sights_attempts
    content = sights["response"]["body"]["choices"][0]["message"]["content"]
    assert (set(json.loads(content)) == {"summary", "confidence"}) is validate
    assert food["fanwise"]["attempts"] == 1 and food["response"]["status_code"] == 200
    assert secrets["response"] is None and secrets["error"]["code"] == "refused"
    with OpenAI(api_key="t", base_url=url, max_retries=0) as client:
        made = sorted(client.batches.list(limit=100).data, key=lambda b: b.created_at)
        assert len(made) == batches
        sent = [client.files.content(b.input_file_id).text.splitlines() for b in made]
    if engine == "batch":  # the follow-up batch sends the repaired request, not the same one
        first, again = (json.loads(line)["body"]["messages"] for line in (sent[0][0], sent[1][0]))
        assert again[: len(first)] == first and len(again) == len(first) + 2
        assert "schema" in again[-1]["content"]


@pytest.mark.parametrize("transport", ["aiohttp", "sdk"])
@pytest.mark.parametrize("endpoint", [Endpoint.RESPONSES, Endpoint.CHAT])
@pytest.mark.parametrize("stream", [False, True])
async def test_the_simulators_refusal_reads_as_a_refusal_on_every_path(
    simulator: Simulator, transport: str, endpoint: Endpoint, stream: bool
) -> None:
    """A scripted refusal reads as Completion.refusal, whole or streamed, on both transports."""
    from fanwise.models.openai import OpenAIModel

    model: Any = (
        FastOpenAIModel(api_key="k", base_url=simulator.base_url)
        if transport == "aiohttp"
        else OpenAIModel(api_key="k", base_url=simulator.base_url)
    )
    simulator.script("Secrets", ["refuse"])
    deltas: list[str] = []
    request = Request.text("Secrets?", endpoint=endpoint)
    completion = await model.complete(request, on_delta=deltas.append if stream else None)
    await model.aclose()
    assert completion.refusal is not None and "can't help" in completion.refusal
    assert completion.text == "" and deltas == []


async def test_a_repaired_call_is_journaled_under_its_original_key(
    simulator: Simulator, tmp_path: Path
) -> None:
    """The repair changes the next attempt only: a resume finds the answer by the original key."""
    from fanwise.journal import Journal, JournalStore
    from fanwise.prices import load_prices

    model = FastOpenAIModel(api_key="k", base_url=simulator.base_url)
    simulator.script("Sights", ["schema"])
    journal = Journal.open(tmp_path / "journal.db")
    run_id = journal.start_run("workflow", "t", {}, endpoint="sim", total=1)
    call = Call(Request.text("Sights?"), schema=Schema.of(ANSWER))
    store = JournalStore(journal, run_id, prices=load_prices(), endpoint="sim")
    [first] = await Engine(model, sleep=NoWait(), store=store).run([call])
    again = JournalStore(journal, run_id, prices=load_prices(), endpoint="sim", resume=True)
    sent = len(simulator.received)
    [second] = await Engine(model, store=again).run([call])
    await model.aclose()
    journal.close()
    assert isinstance(first, Fulfilled) and len(first.attempts) == 2
    assert isinstance(second, Fulfilled) and second.cached
    assert second.value.parsed == first.value.parsed
    assert len(simulator.received) == sent  # nothing sent again


def test_the_python_api_takes_a_schema_for_research_ask_all_and_the_synthesis() -> None:
    """research(schema=, synthesis_schema=) and ask_all(schema=) give validated parsed values."""
    import fanwise

    offline = OfflineSettings(latency=(0.0, 0.0))
    result = fanwise.research(
        "Kyoto",
        ["Sights?", "Food?"],
        schema=Sights,
        synthesis_schema=ANSWER,
        provider="offline",
        offline=offline,
    )
    assert all(isinstance(a.outcome, Fulfilled) for a in result.answers)
    assert all(isinstance(a.outcome.value.parsed, Sights) for a in result.answers)  # type: ignore[union-attr]
    assert set(result.to_dict()["synthesis"]["parsed"]) == {"summary", "confidence"}
    outcomes = fanwise.ask_all(["Sights?"], schema=ANSWER, provider="offline", offline=offline)
    [outcome] = outcomes
    assert isinstance(outcome, Fulfilled) and set(outcome.value.parsed) == {"summary", "confidence"}
    with pytest.raises(ValueError, match="top level"):
        fanwise.ask_all(["Q?"], schema={"type": "string"}, provider="offline", offline=offline)


def test_the_cli_synthesis_schema_gives_the_synthesis_a_parsed_value(tmp_path: Path) -> None:
    """--synthesis-schema: the synthesis is asked for it, and --json carries its parsed value."""
    from tests.processes import run_fanwise

    (tmp_path / "guide.json").write_text(json.dumps(ANSWER))
    done = run_fanwise(
        "research", "Kyoto", "-q", "Sights?", "--synthesis-schema", str(tmp_path / "guide.json"),
        "--json", "--provider", "offline", "--offline-latency", "0,0", "--no-journal",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert "parsed" not in data["questions"][0]
    assert set(data["synthesis"]["parsed"]) == {"summary", "confidence"}


async def test_the_cost_budget_counts_broken_and_refused_answers(simulator: Simulator) -> None:
    """--max-cost's spent total includes the tokens of a repaired answer and of a refusal."""
    from fanwise.budget import Budget
    from fanwise.prices import load_prices

    prices = load_prices()
    budget = Budget(100.0, prices)
    model = FastOpenAIModel(api_key="k", base_url=simulator.base_url)
    simulator.script("Sights", ["schema"])
    simulator.script("Secrets", ["refuse"])
    engine = Engine(model, sleep=NoWait(), admit=budget.admit, observer=budget)
    calls = [Call(Request.text(q), schema=Schema.of(ANSWER)) for q in ("Sights?", "Secrets?")]
    await engine.run(calls)
    await model.aclose()
    sent = [json.loads(body)["usage"] for body in simulator.sent]
    assert len(sent) == 3
    total = Usage(
        input_tokens=sum(u["input_tokens"] for u in sent),
        output_tokens=sum(u["output_tokens"] for u in sent),
    )
    assert budget.spent == pytest.approx(prices.cost("gpt-5", total))
    assert budget.reserved == 0
