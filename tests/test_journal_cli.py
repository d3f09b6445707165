"""The journal from the command line: runs, show, resume, --cache, cost and --max-cost.

Calls go to a real simulator subprocess over loopback HTTP, whose per-prompt attempt counts
prove which calls were (and were not) sent again.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fanwise.cli import cli
from fanwise.journal import Journal
from fanwise.paths import journal_path

OFFLINE = ("--provider", "offline", "--offline-latency", "0,0.01")
QUESTIONS = ("Why is Rome old?", "What to eat in Rome?", "How to get around Rome?")


def fanwise(url: str | None, *args: str, key: str = "test") -> Result:
    """Run the CLI in-process, against the simulator at ``url`` when one is given."""
    target = ["--provider", "openai", "--base-url", url] if url else []
    env = {"OPENAI_API_KEY": key, "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}
    command, *rest = args
    return CliRunner().invoke(cli, [command, *rest, *target], env=env, catch_exceptions=False)


def research(url: str, *args: str) -> Result:
    asks = [part for q in QUESTIONS for part in ("-q", q)]
    return fanwise(url, "research", "Rome", *asks, "--quiet", *args)


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/_stats", timeout=10) as response:
        data: dict[str, Any] = json.load(response)
    return data


def script(url: str, *rules: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url.removesuffix("/v1") + "/_control/script",
        data=json.dumps(list(rules)).encode(),
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def attempts(url: str) -> dict[str, int]:
    """Requests per question (the synthesis prompt is left out)."""
    return {q: n for q, n in stats(url)["attempts"].items() if q in QUESTIONS}


def test_runs_lists_each_run_with_its_counts_cost_and_status(simulator_process: str) -> None:
    """`fanwise runs` shows id, topic, answered and failed calls, the cost and the status."""
    assert research(simulator_process).exit_code == 0
    listing = fanwise(None, "runs")
    assert listing.exit_code == 0
    header, row = listing.stdout.splitlines()
    assert header.split() == [
        *("ID", "STARTED", "KIND", "TOPIC", "OK", "FAILED", "SYNTHESIS", "COST", "CACHE"),
        *("WRITES", "STATUS"),
    ]
    cells = row.split()
    assert cells[0] == "1" and cells[4:8] == ["Rome", "3", "0", "ok"] and cells[-1] == "complete"
    assert cells[-3].startswith("$0.") and cells[-3] != "$0" and cells[-2] == "-"
    [listed] = json.loads(fanwise(None, "runs", "--json").stdout)
    assert listed["totals"]["fulfilled"] == 4 and listed["totals"]["cost_usd"] > 0


def test_show_prints_a_run_again_without_any_request(simulator_process: str) -> None:
    """`fanwise show RUN` (Markdown or --json) gives the same result and sends nothing."""
    first = research(simulator_process, "--json")
    sent = stats(simulator_process)["requests"]
    markdown = fanwise(None, "show", "1")
    shown = json.loads(fanwise(None, "show", "1", "--json").stdout)
    assert stats(simulator_process)["requests"] == sent
    original = json.loads(first.stdout)
    assert markdown.stdout.rstrip("\n") == original["synthesis"]["text"].rstrip("\n")
    assert shown["questions"] == original["questions"]
    assert shown["run"]["id"] == 1 and shown["run"]["status"] == "complete"


def test_resume_sends_only_the_failed_calls_then_synthesizes(simulator_process: str) -> None:
    """A failed question is re-sent on resume; the answered ones cause no request at all."""
    script(simulator_process, {"match": QUESTIONS[1], "faults": ["500"]})
    first = research(simulator_process, "--retries", "0")
    assert first.exit_code == 4, first.stderr
    assert attempts(simulator_process) == dict.fromkeys(QUESTIONS, 1)

    resumed = fanwise(None, "resume", "1", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert attempts(simulator_process) == {QUESTIONS[0]: 1, QUESTIONS[1]: 2, QUESTIONS[2]: 1}
    data = json.loads(resumed.stdout)
    assert data["status"] == "complete" and data["synthesis"]["status"] == "fulfilled"
    assert [q["cached"] for q in data["questions"]] == [True, False, True]
    assert "Missing" not in data["synthesis"]["text"]
    [run] = json.loads(fanwise(None, "runs", "--json").stdout)
    assert (run["status"], run["totals"]["fulfilled"], run["totals"]["rejected"]) == (
        "complete",
        4,
        0,
    )


def test_resume_without_the_original_flags_asks_the_same_server(simulator_process: str) -> None:
    """The run keeps its provider, base URL, model and options: resume needs none of them."""
    script(simulator_process, {"match": QUESTIONS[0], "faults": ["500"]})
    assert research(simulator_process, "--retries", "0", "--model", "gpt-5-mini").exit_code == 4
    resumed = CliRunner().invoke(
        cli, ["resume", "1", "--json"], env={"OPENAI_API_KEY": "test"}, catch_exceptions=False
    )
    assert resumed.exit_code == 0, resumed.stderr
    assert attempts(simulator_process)[QUESTIONS[0]] == 2
    assert json.loads(resumed.stdout)["model"] == "gpt-5-mini"


def test_cache_answers_a_repeated_run_from_the_journal_for_free(simulator_process: str) -> None:
    """With --cache an identical run sends no request, marks every answer cached, costs $0."""
    assert research(simulator_process).exit_code == 0
    sent = stats(simulator_process)["requests"]
    again = research(simulator_process, "--cache", "--json")
    assert again.exit_code == 0
    assert stats(simulator_process)["requests"] == sent
    data = json.loads(again.stdout)
    assert all(q["cached"] for q in data["questions"])
    assert data["cost"]["usd"] == 0
    fresh = research(simulator_process, "--json")
    assert stats(simulator_process)["requests"] == sent + 4, "without --cache it asks again"
    assert json.loads(fresh.stdout)["cost"]["usd"] > 0


def test_the_cost_is_in_the_summary_and_the_json(simulator_process: str) -> None:
    """The summary line ends with the dollars spent; the JSON has them and the table's date."""
    result = fanwise(simulator_process, "travel", "Kyoto", "--plain")
    assert result.stderr.strip().splitlines()[-1].split(" · ")[-1].startswith("$0.0")
    data = json.loads(fanwise(simulator_process, "travel", "Kyoto", "--json", "--quiet").stdout)
    assert data["cost"]["usd"] > 0 and data["cost"]["prices_taken"]
    offline = json.loads(
        fanwise(None, "travel", "Kyoto", "--json", "--quiet", "--offline-latency", "0,0.01").stdout
    )
    assert offline["cost"]["usd"] == 0, "the offline model costs $0"


def test_max_cost_stops_launching_and_resume_with_more_budget_finishes(
    simulator_process: str, tmp_path: Path
) -> None:
    """Past the budget no call is sent, the user is told, and a resume with more sends the rest."""
    plan = tmp_path / "rome.toml"
    questions = ", ".join(json.dumps(q) for q in QUESTIONS)
    plan.write_text(
        f'topic = "Rome"\n[research]\nquestions = [{questions}]\n[model]\nmax_output_tokens = 100\n'
    )
    # each call: about $0.001 estimated (100 output tokens at gpt-5's $10/1M), less spent
    result = fanwise(
        simulator_process, "run", str(plan), "--max-cost", "0.002", "-c", "1", "--json"
    )
    data = json.loads(result.stdout)
    assert attempts(simulator_process) == dict.fromkeys(QUESTIONS[:2], 1)
    refused = data["questions"][2]
    assert refused["status"] == "rejected"
    assert "budget of $0.0020 would be passed" in refused["error"]["message"]
    assert "--max-cost $0.0020: stopped launching calls; 2 not sent" in result.stderr
    assert "fanwise resume 1 --max-cost MORE" in result.stderr
    assert 0 < data["cost"]["usd"] <= 0.002 and data["synthesis"]["status"] == "rejected"

    resumed = fanwise(None, "resume", "1", "--max-cost", "1", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert attempts(simulator_process) == dict.fromkeys(QUESTIONS, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "9"], "no run 9 in the journal"),
        (["resume", "9"], "no run 9 in the journal"),
        (["travel", "X", "--prices", "missing.toml"], "--prices missing.toml: no such file"),
    ],
)
def test_bad_journal_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    """Unknown runs, missing price files and unbounded budgets are clean usage errors."""
    Journal.open(journal_path()).close()  # a journal without run 9 (show never creates one)
    result = fanwise(None, *args, *(OFFLINE if args[0] == "travel" else ()))
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_budget_refuses_to_start_on_a_model_without_a_price(simulator_process: str) -> None:
    """--max-cost with an unpriced model is a usage error before any request."""
    result = fanwise(simulator_process, "travel", "X", "--max-cost", "1", "-m", "my-llm")
    assert result.exit_code == 2 and "model 'my-llm' has no price" in result.stderr
    assert stats(simulator_process)["requests"] == 0


def test_a_bad_price_file_is_named(tmp_path: Path) -> None:
    """A user price table that does not parse is a usage error naming the file."""
    prices = tmp_path / "prices.toml"
    prices.write_text("[models]\nx = 1\n")
    result = fanwise(None, "travel", "X", "--prices", str(prices), *OFFLINE)
    assert result.exit_code == 2 and f"{prices}: model 'x' needs input and output" in result.stderr


def test_the_api_key_never_reaches_the_journal(simulator_process: str, fanwise_home: Path) -> None:
    """The key used for the calls appears nowhere in the journal files."""
    key = "sk-proj-SECRETSECRETSECRET0123456789"
    assert fanwise(simulator_process, "travel", "Kyoto", "--quiet", key=key).exit_code == 0
    for path in fanwise_home.iterdir():
        assert b"SECRETSECRET" not in path.read_bytes(), path.name
    db = sqlite3.connect(fanwise_home / "journal.db")
    assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 4


def test_batch_writes_every_line_and_resume_resends_only_failures(
    simulator_process: str, tmp_path: Path
) -> None:
    """A batch keys its output by custom_id; resume rewrites it, sending only the failed line."""
    source = tmp_path / "in.jsonl"
    body = {"model": "gpt-5-nano", "input": "Say hi to {}"}
    lines = [
        json.dumps({"custom_id": f"r{n}", "method": "POST", "url": "/v1/responses",
                    "body": {**body, "input": f"Say hi to {n}"}})
        for n in range(6)
    ]  # fmt: skip
    lines.insert(2, "{oops")
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    script(simulator_process, {"match": "Say hi to 4", "faults": ["500"]})
    first = fanwise(simulator_process, "batch", str(source), "-o", str(out), "--retries", "0")
    assert first.exit_code == 4
    assert f"{source}:3: not valid JSON" in first.stderr
    records = [json.loads(x) for x in out.read_text().splitlines()]
    by_id = {r["custom_id"]: r for r in records}
    assert len(records) == 7 and by_id["r4"]["response"]["status_code"] == 500
    assert by_id["r4"]["response"]["body"]["error"]["type"] == "server_error"
    [message] = by_id["r0"]["response"]["body"]["output"]
    assert message["content"][0]["text"].startswith("simulated answer to")
    assert by_id[None]["error"]["code"] == "invalid_line"

    resumed = fanwise(None, "resume", "1")
    assert resumed.exit_code == 4, "the bad line is still bad"
    counts = stats(simulator_process)["attempts"]
    assert counts == {f"Say hi to {n}": 2 if n == 4 else 1 for n in range(6)}
    records = [json.loads(x) for x in out.read_text().splitlines()]
    ok = [r["custom_id"] for r in records if r["response"] and r["response"]["status_code"] == 200]
    assert sorted(ok) == [f"r{n}" for n in range(6)]
    again = {r["custom_id"]: r for r in records}
    assert again["r0"]["response"] == by_id["r0"]["response"], "reused whole from the journal"


def test_resume_writes_to_the_runs_own_files_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative --out and --journal are the run's own: resume elsewhere uses the same ones."""
    first_dir, other_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    other_dir.mkdir()
    monkeypatch.chdir(first_dir)
    args = ("--journal", "j.db", "-o", "guide.md", "--quiet", *OFFLINE)
    assert fanwise(None, "travel", "Oslo", *args).exit_code == 0
    (first_dir / "guide.md").unlink()
    monkeypatch.chdir(other_dir)
    resumed = fanwise(None, "resume", "1", "--journal", str(first_dir / "j.db"))
    assert resumed.exit_code == 0, resumed.stderr
    assert (first_dir / "guide.md").read_text().startswith("# Oslo")
    assert not list(other_dir.iterdir())


def test_resume_of_a_batch_refuses_the_flags_batch_refuses(
    simulator_process: str, tmp_path: Path
) -> None:
    """`fanwise resume RUN --json` on a batch run exits 2 with one line, and sends nothing."""
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"prompt": "Say hi", "custom_id": "a"}) + "\n")
    script(simulator_process, {"match": "Say hi", "faults": ["500"]})
    first = fanwise(simulator_process, "batch", str(source), "-o", str(out), "--retries", "0")
    assert first.exit_code == 1, first.stderr  # no result: the one line failed
    sent = stats(simulator_process)["requests"]
    refused = fanwise(None, "resume", "1", "--json")
    assert refused.exit_code == 2
    assert refused.stderr.splitlines() == [
        "fanwise: error: --json: run 1 is a batch, and fanwise batch takes no --json "
        "(its result lines are JSON already)"
    ]
    assert refused.stdout == "" and stats(simulator_process)["requests"] == sent
    assert fanwise(simulator_process, "batch", str(source), "--json").exit_code == 2


def test_show_jsonl_gives_each_batch_call_its_input_line(tmp_path: Path) -> None:
    """Blank and bad lines take no call index, yet `fanwise show RUN --jsonl` gives each
    result the input line its output line had, read from the journal."""
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(
        "\n".join(
            [
                json.dumps({"prompt": "One?", "custom_id": "a"}),
                "",
                "{oops",
                json.dumps({"prompt": "Two?", "custom_id": "b"}),
                "   ",
                json.dumps({"prompt": "Three?", "custom_id": "c"}),
            ]
        )
        + "\n"
    )
    ran = fanwise(None, "batch", str(source), "-o", str(out), "--quiet", *OFFLINE)
    assert ran.exit_code == 4, ran.stderr  # partial: the bad line
    written = {
        r["custom_id"]: r["fanwise"]["line"] for r in map(json.loads, out.read_text().splitlines())
    }
    assert written == {"a": 1, None: 3, "b": 4, "c": 6}
    shown = fanwise(None, "show", "1", "--jsonl")
    replayed = {
        r["custom_id"]: r["fanwise"]["line"] for r in map(json.loads, shown.stdout.splitlines())
    }
    assert replayed == {"a": 1, "b": 4, "c": 6}


def test_a_run_journaled_before_configs_resumes_from_its_old_options(
    simulator_process: str,
) -> None:
    """A spec of the old form (the CLI's flags as ``options``, no ``config``) still resumes:
    converted to a RunConfig, it asks the same server and sends only the failed call."""
    script(simulator_process, {"match": QUESTIONS[1], "faults": ["500"]})
    assert research(simulator_process, "--retries", "0").exit_code == 4
    db = sqlite3.connect(journal_path())
    spec = json.loads(db.execute("SELECT spec FROM runs WHERE id = 1").fetchone()[0])
    assert spec["config"]["version"] == 1  # today's form, which the old one replaces here
    old = {
        **{k: v for k, v in spec.items() if k not in ("config", "cli", "args")},
        "options": {
            "provider": "openai", "base_url": simulator_process, "model": None,
            "api": "responses", "concurrency": 8, "retries": 0, "seed": 0,
            "offline_latency": [0.5, 3.0], "offline_fail_rate": 0.0, "journal": None,
            "no_journal": False, "journal_content": "full", "cache": False, "engine": "live",
            "endpoints": [], "mode": "settled", "min_answers": 1, "quiet": True, "out": None,
        },
    }  # fmt: skip
    db.execute("UPDATE runs SET spec = ? WHERE id = 1", (json.dumps(old),))
    db.commit()
    db.close()
    resumed = fanwise(None, "resume", "1", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert attempts(simulator_process) == {QUESTIONS[0]: 1, QUESTIONS[1]: 2, QUESTIONS[2]: 1}
    assert [q["cached"] for q in json.loads(resumed.stdout)["questions"]] == [True, False, True]
