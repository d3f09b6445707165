"""fanwise's main paths against a real server: llama-cpp-python's, with SmolLM2-135M.

Assertions are on structure, status, usage, custom_ids and truncation flags, never on the
model's text. Caps are small, so each call takes about a second on two cores.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import openai

from tests.real.server import MODEL, LlamaServer, Ran, cli_env, fanwise

SERVER = ["--api", "chat", "--model", MODEL, "--plain"]
FASTER = re.compile(r"\d+\.\d× faster|faster than one after another|took them in turn")
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answer"],
}
PLAN = """\
title = "city notes"
topic = "{city}"

[variables]
city = "Lyon"

[research]
questions = [
    "What should a visitor see in {city}?",
    "How does one get around {city}?",
    "What is {city} known for?",
]

[synthesis]
instructions = "Write three sentences about {city} from the research below."

[model]
name = "smollm2"
temperature = 0
max_output_tokens = 40
"""


def at(server: LlamaServer) -> list[str]:
    return ["--base-url", server.base_url, *SERVER]


def run_id(home: Path) -> int:
    runs = fanwise("runs", "--json", "-n", "1", home=home).json()
    return int(runs[0]["id"])


def assert_capped(usage: dict[str, Any], truncated: bool, cap: int) -> None:
    """Within the cap; cut exactly when it reached it (finish_reason length)."""
    assert 0 < usage["output_tokens"] <= cap, usage
    assert "unknown" not in usage
    assert truncated is (usage["output_tokens"] == cap), (usage, truncated)


def test_research_json_keeps_every_answer_within_the_cap(
    chat_server: LlamaServer, tmp_path: Path
) -> None:
    """``research --max-output-tokens 64 --json``: every answer and the synthesis within 64
    tokens (sent as max_tokens, which this server honours), each cut one flagged truncated, the
    usage known (not streamed)."""
    questions = ["What to see in Paris?", "What to eat in Paris?", "Is Paris safe at night?"]
    args = ["research", "Paris", *(a for q in questions for a in ("-q", q))]
    ran = fanwise(*args, *at(chat_server), "--max-output-tokens", "64", "--json", home=tmp_path)
    assert ran.code == 0, ran.stderr
    document = ran.json()
    assert document["status"] == "complete" and document["model"] == MODEL
    assert [q["status"] for q in document["questions"]] == ["fulfilled"] * 3
    for answer in document["questions"]:
        assert_capped(answer["usage"], answer["truncated"], 64)
        assert answer["attempts"] == 1
    synthesis = document["synthesis"]
    assert synthesis["status"] == "fulfilled"
    assert_capped(synthesis["usage"], synthesis["truncated"], 64)
    stats = document["stats"]
    assert stats["truncated"] == sum(q["truncated"] for q in document["questions"])
    assert stats["sent"] == 3 and stats["overlap"] > 1.2  # the calls were out at once
    assert stats["speedup"] is None  # whether it was faster the client cannot tell
    if stats["truncated"]:
        assert "cut at their token cap" in ran.stderr


def test_travel_streamed_says_the_synthesis_usage_is_unknown(
    chat_server: LlamaServer, tmp_path: Path
) -> None:
    """``travel`` streams its synthesis; this server's streams carry no usage (it ignores
    stream_options), so the summary says "usage unknown for 1 call", not 0 tokens and $0, and
    the journaled run says so too."""
    ran = fanwise("travel", "Lyon", *at(chat_server), "--max-output-tokens", "32", home=tmp_path)
    assert ran.code == 0, ran.stderr
    assert ran.stdout.strip(), "the guide streams to stdout"
    assert ran.stderr.count("✅ Answered: ") == 3
    assert "usage unknown for 1 call" in ran.stderr
    shown = fanwise("show", str(run_id(tmp_path)), "--json", home=tmp_path).json()
    assert shown["synthesis"]["usage"]["unknown"] == 1
    for answer in shown["questions"]:
        assert_capped(answer["usage"], answer["truncated"], 32)


def test_a_plan_at_temperature_zero_caps_from_its_model_table(
    chat_server: LlamaServer, tmp_path: Path
) -> None:
    """A plan's ``[model] max_output_tokens = 40`` (temperature 0) reaches the server: every
    answer within 40 tokens, flagged when cut."""
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    ran = fanwise("run", str(plan), *at(chat_server), "--json", home=tmp_path)
    assert ran.code == 0, ran.stderr
    document = ran.json()
    for answer in document["questions"]:
        assert answer["status"] == "fulfilled"
        assert_capped(answer["usage"], answer["truncated"], 40)
    assert_capped(document["synthesis"]["usage"], document["synthesis"]["truncated"], 40)


def test_schema_falls_back_to_json_object_and_returns_parsed(
    chat_server: LlamaServer, tmp_path: Path
) -> None:
    """This server answers ``response_format: json_schema`` with HTTP 500: that is not retried
    as a server error; the request goes again as ``json_object`` with the schema (which the
    server turns into a grammar), and every answer comes back ``parsed``."""
    schema = tmp_path / "yes-no.json"
    schema.write_text(json.dumps(SCHEMA))
    args = ["research", "Paris", "-q", "Is Paris in France?", "-q", "Is Paris in Spain?"]
    ran = fanwise(
        *args, *at(chat_server), "--schema", str(schema), "--max-output-tokens", "64", "--json",
        home=tmp_path,
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    for answer in ran.json()["questions"]:
        assert answer["status"] == "fulfilled", answer
        assert answer["parsed"]["answer"] in ("yes", "no")
        assert answer["attempts"] <= 2  # the refusal, then json_object; never 4 "server" tries


def chat_lines(count: int) -> list[dict[str, Any]]:
    """Chat lines at temperature 0; every third is capped at 4 tokens, so it is cut."""
    lines = []
    for i in range(count):
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"Name {i + 2} colours."}],
            "max_tokens": 4 if i % 3 == 0 else 24,
            "temperature": 0,
            "seed": 7,
        }
        lines.append({"custom_id": f"chat-{i}", "method": "POST", "url": "/v1/chat/completions",
                      "body": body})  # fmt: skip
    return lines


def embedding_lines(count: int) -> list[dict[str, Any]]:
    body = {"model": MODEL, "encoding_format": "float"}
    return [
        {"custom_id": f"emb-{i}", "method": "POST", "url": "/v1/embeddings",
         "body": {**body, "input": f"The number {i} in a sentence."}}
        for i in range(count)
    ]  # fmt: skip


def write_lines(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def read_lines(path: Path) -> dict[str, dict[str, Any]]:
    """Output lines by custom_id (each must appear once)."""
    lines = [json.loads(text) for text in path.read_text().splitlines() if text]
    by_id = {line["custom_id"]: line for line in lines}
    assert len(by_id) == len(lines), "a custom_id appears twice"
    return by_id


def same_shape(ours: Any, theirs: Any, path: str = "") -> None:
    """Field by field: the same keys everywhere, the same values but for ids, times and text
    (text is the model's), floats close."""
    if isinstance(ours, dict):
        assert isinstance(theirs, dict) and set(ours) == set(theirs), (path, ours, theirs)
        for key in ours:
            if key not in ("id", "created", "content", "system_fingerprint"):
                same_shape(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(ours, list):
        assert isinstance(theirs, list) and len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            same_shape(a, b, f"{path}[{i}]")
    elif isinstance(ours, float):
        assert math.isclose(ours, theirs, rel_tol=1e-3, abs_tol=1e-4), (path, ours, theirs)
    else:
        assert ours == theirs, (path, ours, theirs)


async def sdk_answers(base_url: str, lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the official openai SDK gets for the same bodies, one at a time."""
    async with openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0) as client:
        answers = {}
        for line in lines:
            body = dict(line["body"])
            got: Any
            if line["url"].endswith("/embeddings"):
                got = await client.embeddings.create(**body)
            else:
                got = await client.chat.completions.create(**body)
            with warnings.catch_warnings():  # a vector a token, where the SDK expects one
                warnings.simplefilter("ignore", UserWarning)
                answers[line["custom_id"]] = got.model_dump(mode="json", exclude_unset=True)
        return answers


def test_a_batch_of_chat_lines_matches_the_official_sdk(
    chat_server: LlamaServer, tmp_path: Path
) -> None:
    """Nine chat lines through ``fanwise batch``: each custom_id once, status 200, the server's
    whole body equal field by field to what the official SDK gets, usage included; a line cut
    at max_tokens is flagged truncated (finish_reason length)."""
    lines = chat_lines(9)
    source, out = write_lines(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl"
    ran = fanwise("batch", str(source), "-o", str(out), "--base-url", chat_server.base_url,
                  "-c", "4", home=tmp_path)  # fmt: skip
    assert ran.code == 0, ran.stderr
    ours = read_lines(out)
    assert set(ours) == {line["custom_id"] for line in lines}
    theirs = asyncio.run(sdk_answers(chat_server.base_url, lines))
    for custom_id, line in ours.items():
        assert line["error"] is None and line["response"]["status_code"] == 200
        body = line["response"]["body"]
        same_shape(body, theirs[custom_id], custom_id)
        [choice] = body["choices"]
        cut = choice["finish_reason"] == "length"
        assert line["fanwise"]["truncated"] is cut
        cap = next(x["body"]["max_tokens"] for x in lines if x["custom_id"] == custom_id)
        assert body["usage"]["completion_tokens"] <= cap
    assert sum(line["fanwise"]["truncated"] for line in ours.values()) >= 3


def test_a_batch_of_embedding_lines_matches_the_official_sdk(
    embedding_server: LlamaServer, tmp_path: Path
) -> None:
    """Six embedding lines: each custom_id once, the vectors (one a token: this model has no
    pooling) and the usage as the SDK gets them."""
    lines = embedding_lines(6)
    source, out = write_lines(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl"
    ran = fanwise("batch", str(source), "-o", str(out), "--base-url", embedding_server.base_url,
                  home=tmp_path)  # fmt: skip
    assert ran.code == 0, ran.stderr
    ours = read_lines(out)
    theirs = asyncio.run(sdk_answers(embedding_server.base_url, lines))
    assert set(ours) == set(theirs)
    for custom_id, line in ours.items():
        body = line["response"]["body"]
        assert body["data"][0]["embedding"], "a vector (a vector a token: SmolLM2 has no pooling)"
        same_shape(body, theirs[custom_id], custom_id)


def research_stats(server: LlamaServer, home: Path, concurrency: int) -> tuple[float, Ran]:
    questions = [f"Name one fact about the number {n}." for n in range(6)]
    args = ["research", "numbers", *(a for q in questions for a in ("-q", q))]
    started = time.monotonic()
    ran = fanwise(*args, *at(server), "-c", str(concurrency), "--max-output-tokens", "24",
                  "--json", home=home)  # fmt: skip
    assert ran.code == 0, ran.stderr
    return time.monotonic() - started, ran


def test_eight_at_once_claims_no_speed_up_the_server_did_not_give(
    chat_server: LlamaServer, tmp_path: Path
) -> None:
    """Six questions at -c 1 and at -c 8: the server generates one answer at a time; at -c 8
    the calls overlap (several out at once) and the summary says so as measured ("calls in
    flight on average"), never "× faster" nor a speed-up in --json, whatever the wall times."""
    wall_1, one = research_stats(chat_server, tmp_path, 1)
    wall_8, eight = research_stats(chat_server, tmp_path, 8)
    stats_1, stats_8 = one.json()["stats"], eight.json()["stats"]
    print(f"-c 1: {wall_1:.1f} s, -c 8: {wall_8:.1f} s; -c 8: {stats_8}")
    assert stats_1["overlap"] < 1.1 and stats_8["overlap"] > 2.0
    assert stats_1["speedup"] is None and stats_8["speedup"] is None
    assert f"{stats_8['overlap']:.1f} calls in flight on average" in eight.stderr
    assert not FASTER.search(eight.stderr), eight.stderr


def wait_for_lines(path: Path, count: int, process: subprocess.Popen[str]) -> None:
    until = time.monotonic() + 120
    while time.monotonic() < until and process.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} lines in {path}")


def start_batch(source: Path, out: Path, server: LlamaServer, home: Path, *extra: str) -> Any:
    args = [sys.executable, "-m", "fanwise", "batch", str(source), "-o", str(out)]
    args += ["--base-url", server.base_url, "-c", "1", *extra]
    return subprocess.Popen(args, env=cli_env(home), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def test_a_server_killed_mid_run_then_resume_sends_only_what_is_missing(
    own_server: LlamaServer, tmp_path: Path
) -> None:
    """A batch of six (one at a time, no retries) whose server is killed after two answers: the
    rest fail as network errors; with the server back, ``fanwise resume`` sends only those, and
    the output has every custom_id once, each answered."""
    lines = chat_lines(6)
    source, out = write_lines(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl"
    batch = start_batch(source, out, own_server, tmp_path, "--retries", "0")
    wait_for_lines(out, 2, batch)
    own_server.kill()
    _, stderr = batch.communicate(timeout=120)
    assert batch.returncode in (1, 4), stderr
    failed = [line for line in read_lines(out).values() if line["error"] is not None]
    assert failed and all(line["response"] is None or line["response"]["status_code"] != 200
                          for line in failed)  # fmt: skip
    answered = len(read_lines(out)) - len(failed)
    own_server.start()
    resumed = fanwise("resume", str(run_id(tmp_path)), home=tmp_path)
    assert resumed.code == 0, resumed.stderr
    final = read_lines(out)
    assert set(final) == {line["custom_id"] for line in lines}
    assert all(line["error"] is None for line in final.values())
    reused = sum(1 for line in final.values() if line["fanwise"]["cached"])
    assert reused >= answered >= 2, (reused, answered)


def test_a_restarted_server_is_reached_again_within_the_run(
    own_server: LlamaServer, tmp_path: Path
) -> None:
    """The server is killed mid-batch and back two seconds later: refused connections back off
    for long enough (up to ~30 s), so the same run answers every line, exit 0."""
    lines = chat_lines(5)
    source, out = write_lines(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl"
    batch = start_batch(source, out, own_server, tmp_path)
    wait_for_lines(out, 2, batch)
    own_server.kill()
    time.sleep(2)
    own_server.start()
    _, stderr = batch.communicate(timeout=180)
    assert batch.returncode == 0, stderr
    final = read_lines(out)
    assert set(final) == {line["custom_id"] for line in lines}
    assert all(line["error"] is None for line in final.values())
    assert max(line["fanwise"]["attempts"] for line in final.values()) > 1
