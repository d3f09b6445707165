"""Issue 14: no input a user can type or point at prints a traceback.

A corpus of malformed plan files, batch files and flag values goes through the real command
line. Each must end in a clean one-line error and exit 2 (or, for a bad batch line, the
documented ``FILE:LINE: reason`` with the other lines going on), never in an exception.
In-process runs (``CliRunner``) prove no exception escapes; a few real processes prove that
stderr holds no "Traceback".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fanwise.cli import cli

ENV = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}
FAST = ["--offline-latency", "0,0", "--quiet"]
RESEARCH = b'[research]\nquestions = ["a?"]\n'

PLANS: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "the plan has no [research] table"),
    "binary": (bytes(range(256)), ":2: not UTF-8 text (byte 0x80)"),
    "latin-1": (b'topic = "caf\xe9"\n' + RESEARCH, ":1: not UTF-8 text (byte 0xe9)"),
    "not-toml": (b"title = \n", ":1: not valid TOML"),
    "nul-byte": (b'topic = "x\x00"\n', ":1: not valid TOML"),
    "deep": (b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
    "no-research": (b'topic = "x"\n', "the plan has no [research] table"),
    "questions-not-list": (b'topic = "x"\n[research]\nquestions = "a"\n', ":3: [research] needs"),
    "question-not-text": (b'topic = "x"\n[research]\nquestions = [1]\n', ":3: every question"),
    "topic-not-text": (b"topic = 3\n" + RESEARCH, ":1: 'topic' must be a string"),
    "unknown-key": (b'topic = "x"\nquestons = 1\n' + RESEARCH, ":2: unknown key 'questons'"),
    "undeclared-variable": (b'topic = "{city}"\n' + RESEARCH, ":1: 'topic' uses {city}"),
    "open-brace": (b'topic = "{city"\n' + RESEARCH, ":1: bad template in 'topic'"),
    "variables-not-table": (b'topic = "x"\nvariables = 3\n' + RESEARCH, ":2: [variables] must"),
    "research-not-table": (b'topic = "x"\nresearch = [1]\n', ":2: 'research' must be a table"),
    "bad-temperature": (
        b'topic = "x"\n' + RESEARCH + b'[model]\ntemperature = "hot"\n',
        ":5: temperature must be a number",
    ),
    "bad-endpoint": (
        b'topic = "x"\n' + RESEARCH + b'[model]\nendpoints = ["notaurl"]\n',
        ":5: endpoint 'notaurl' must be an http:// or https:// URL",
    ),
}


def fanwise(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=ENV)


def assert_clean(result: Result, code: int | set[int], message: str) -> None:
    """No exception escaped, the exit code is one of ``code``, and stderr holds ``message``."""
    codes = {code} if isinstance(code, int) else code
    escaped = result.exception if not isinstance(result.exception, SystemExit) else None
    assert escaped is None, f"{type(escaped).__name__}: {escaped}"
    assert "Traceback" not in result.output
    assert result.exit_code in codes, (result.exit_code, result.output)
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("name", sorted(PLANS))
def test_a_malformed_plan_is_one_line_with_exit_2(name: str, tmp_path: Path) -> None:
    """Every malformed plan file is `FILE[:LINE]: what is wrong`, exit 2, no traceback."""
    data, message = PLANS[name]
    plan = tmp_path / f"{name}.toml"
    plan.write_bytes(data)
    result = fanwise("run", str(plan), *FAST)
    assert_clean(result, 2, message)
    assert result.stderr.startswith(f"fanwise: error: {plan}")


BATCHES: dict[str, tuple[bytes, int | set[int], str]] = {
    # name: (content, exit code(s), what stderr says)
    "truncated-json": (b'{"prompt": "a"}\n{"prompt": "b"\n', 4, ":2: not valid JSON"),
    "five-mb-line": (b'{"prompt": "' + b"x" * 5_000_000 + b'"}\n', 0, "1 fulfilled"),
    "bom": (b'\xef\xbb\xbf{"prompt": "a"}\n{"prompt": "b"}\n', 0, "2 fulfilled"),
    "crlf": (b'{"prompt": "a"}\r\n{"prompt": "b"}\r\n', 0, "2 fulfilled"),
    "not-objects": (b'[1, 2]\n"text"\nnull\n{"prompt": "a"}\n', 4, ":3: expected a JSON object"),
    "bad-fields": (b'{"prompt": 5}\n{"prompt": "a"}\n', 4, ":1: prompt must be a non-empty"),
    "deep": (b'{"prompt": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", 1, ":1: not"),
    "wrong-url": (
        b'{"custom_id": "a", "method": "POST", "url": "/v1/images", "body": {}}\n{"prompt": "b"}\n',
        4,
        ":1: url must be one of",
    ),
    "binary": (bytes(range(256)) * 4, 1, ":2: not UTF-8 text (byte 0x80"),
    "one-0xff-line": (
        b'{"prompt": "a"}\n\xff\n{"prompt": "b"}\n',
        4,
        ":2: not UTF-8 text (byte 0xff",
    ),
    "empty": (b"", 2, "no requests in"),
    "blank-lines": (b"\n  \n\r\n", 2, "no requests in"),
    "get-method": (
        b'{"custom_id": "a", "method": "GET", "url": "/v1/responses", "body": {"input": "x"}}\n',
        1,
        ':1: method must be "POST"',
    ),
}


@pytest.mark.parametrize("name", sorted(BATCHES))
def test_a_malformed_batch_file_ends_cleanly(name: str, tmp_path: Path) -> None:
    """Every malformed batch file ends with its line's error (or exit 2), no traceback."""
    data, code, message = BATCHES[name]
    source = tmp_path / f"{name}.jsonl"
    source.write_bytes(data)
    out = tmp_path / "out.jsonl"
    result = fanwise("batch", str(source), "-o", str(out), "--offline-latency", "0,0")
    assert_clean(result, code, message)  # exit 4: partial, so the good lines went on


FLAGS = [
    (["-c", "0"], "'--concurrency' / '-c': 0 is not in the range"),
    (["-c", "many"], "'many' is not a valid integer"),
    (["--timeout", "-1"], "'--timeout': -1.0 is not in the range"),
    (["--timeout", "nan"], "'nan' is not a finite number"),
    (["--max-cost", "inf"], "'inf' is not a finite number"),
    (["--offline-fail-rate", "nan"], "'nan' is not a finite number"),
    (["--base-url", "127.0.0.1:8000/v1"], "must be an http:// or https:// URL"),
    (["--min-answers", "4"], "the plan has only 3 questions"),
    (["--out", "/nonexistent/dir/guide.md"], "the directory /nonexistent/dir does not exist"),
    (["--deadline", "0"], "'--deadline': '0': a deadline must be later than now"),
    (["--retries", "-1"], "'--retries': -1 is not in the range"),
    (["--min-answers", "0"], "'--min-answers': 0 is not in the range"),
    (["--offline-latency", "3,1"], "needs 0 <= LOW <= HIGH"),
    (["--offline-latency", "fast"], "is not LOW,HIGH in seconds"),
    (["--offline-fail-rate", "2"], "2.0 is not in the range 0<=x<=1"),
    (["--rpm", "0"], "'--rpm': 0 is not in the range"),
    (["--max-cost", "-1"], "'--max-cost': -1.0 is not in the range"),
    (["--endpoints", "notaurl"], "endpoint 'notaurl' must be an http:// or https:// URL"),
    (["--endpoints", ","], "expected URL1,URL2"),
    (["--prices", "missing.toml"], "--prices missing.toml: no such file"),
    (["--mode", "any"], "'any' is not one of 'settled', 'all'"),
    (["--engine", "warp"], "'warp' is not one of"),
    (["--reasoning-effort", "max"], "'max' is not one of"),
    (["--report", "/nonexistent/dir/r.html"], "the directory /nonexistent/dir does not exist"),
    (["--journal", "/dev/null/x"], "cannot open the journal /dev/null/x"),
]


@pytest.mark.parametrize(("flags", "message"), FLAGS, ids=[" ".join(f) for f, _ in FLAGS])
def test_a_bad_flag_value_is_exit_2(flags: list[str], message: str) -> None:
    """Every bad flag value is a usage error naming the flag, exit 2, no traceback."""
    assert_clean(fanwise("travel", "Kyoto", *FAST, *flags), 2, message)


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("binary", bytes(range(256)), "not UTF-8 text (byte 0x80)"),
        ("not-toml", b"[models\n", "not valid TOML"),
        ("deep", b"x = " + b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_a_bad_price_file_is_exit_2(kind: str, data: bytes, message: str, tmp_path: Path) -> None:
    """A --prices file that is binary, not TOML or nested too deep: one line, exit 2."""
    prices = tmp_path / f"{kind}.toml"
    prices.write_bytes(data)
    assert_clean(fanwise("travel", "Kyoto", *FAST, "--prices", str(prices)), 2, message)


def test_other_commands_refuse_bad_values_cleanly(tmp_path: Path) -> None:
    """show, runs, simulate and research with bad values: exit 2, a message, no traceback."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for args, message in [
        (["show", "abc"], "'abc' is not a valid integer"),
        (["show", "0"], "0 is not in the range"),
        (["runs", "-n", "0"], "0 is not in the range"),
        (["research", "x", "-q", " "], "a question must not be empty"),
        (["research", " ", "-q", "why?"], "TOPIC must not be empty"),
        (["research", "x", "-q", f"@{tmp_path}"], "is a directory"),
        (["travel", ""], "DESTINATION must not be empty"),
        (["run", "travel", "--set", "destination= "], "needs a value for destination"),
        (["run", str(tmp_path)], "is a directory"),
        (["show", "1"], "no journal at"),
        (["run", "travel", "--set", "=x"], "expected KEY=VALUE"),
        (["run", "travel"], "needs a value for destination"),
        (["simulate", "--port", "99999"], "99999 is not in the range"),
        (["simulate", "--fail", "500=2"], "a probability must be between 0 and 1"),
        (["simulate", "--script", str(deep)], "--script"),
    ]:
        assert_clean(fanwise(*args), 2, message)


def test_the_worst_inputs_leave_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    """Run as a shell would: a binary plan, a deeply nested batch line and a binary price
    file exit cleanly, and stderr has no "Traceback" (in-process runs cannot show that)."""
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    deep = tmp_path / "deep.jsonl"
    deep.write_bytes(b'{"prompt": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    for args, code in [
        (["run", str(binary)], 2),
        (["batch", str(deep), "-o", str(tmp_path / "out.jsonl")], 1),
        (["travel", "Kyoto", "--prices", str(binary), *FAST], 2),
    ]:
        child = subprocess.run(
            [sys.executable, "-m", "fanwise", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **ENV},
            timeout=60,
            check=False,
        )
        assert child.returncode == code, (args, child.stderr)
        assert "Traceback" not in child.stderr and child.stderr.strip(), args
