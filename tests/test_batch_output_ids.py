"""`fanwise batch --engine batch` output lines carry the provider's own line id and the body's
bytes exactly as the provider sent them (OpenAI's Batch API and Anthropic's Message Batches)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from fanwise.batchapi.anthropic import result_bytes
from fanwise.cli import cli
from fanwise.jsonspans import items_text, member_text
from tests.conftest import SimulatorProcess


def _get(url: str, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        data: bytes = response.read()
    return data


def _input(path: Path, count: int) -> Path:
    lines = (
        json.dumps({"prompt": f"Why é {i}? \u2603", "custom_id": f"q{i}"}) for i in range(count)
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _batch(path: Path, out: Path, env: dict[str, str], *target: str) -> None:
    args = ["batch", str(path), "-o", str(out), "--quiet", "--engine", "batch",
            "--batch-poll", "0.05", "--no-journal", *target]  # fmt: skip
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _ours(out: Path) -> dict[str, str]:
    """Each output line's id and the text of its body, cut from the line as written."""
    found = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        body = member_text(line, "response", "body")
        assert body is not None
        found[json.loads(line)["id"]] = body
    return found


def test_openai_batch_lines_keep_the_line_id_and_the_body_bytes(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """Each output line's id is the Batch API output line's id, its body that line's bytes."""
    sim = spawn_simulator()
    out = tmp_path / "out.jsonl"
    env = {"OPENAI_API_KEY": "test", "OPENAI_BASE_URL": "", "FANWISE_MODEL": ""}
    _batch(_input(tmp_path / "in.jsonl", 5), out, env, "--provider", "openai",
           "--base-url", sim.base_url)  # fmt: skip
    auth = {"Authorization": "Bearer test"}
    [batch] = json.loads(_get(sim.base_url + "/batches", auth))["data"]
    raw = _get(f"{sim.base_url}/files/{batch['output_file_id']}/content", auth).decode()
    theirs = {json.loads(line)["id"]: member_text(line, "response", "body")
              for line in raw.splitlines() if line.strip()}  # fmt: skip
    ours = _ours(out)
    assert len(ours) == 5 and all(i.startswith("batch_req_") for i in ours)
    assert ours == {i: theirs[i] for i in ours}, "the provider's ids, the provider's bytes"


def test_anthropic_batch_lines_keep_the_custom_id_and_the_message_bytes(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """Each output line's id is the result's custom_id, its body the Message's bytes."""
    sim = spawn_simulator()
    out = tmp_path / "out.jsonl"
    env = {"ANTHROPIC_API_KEY": "test", "OPENAI_API_KEY": "", "FANWISE_MODEL": ""}
    _batch(_input(tmp_path / "in.jsonl", 4), out, env, "--provider", "anthropic",
           "--base-url", sim.url, "--model", "claude-haiku-4-5")  # fmt: skip
    headers = {"x-api-key": "test", "anthropic-version": "2023-06-01"}
    [batch] = json.loads(_get(sim.url + "/v1/messages/batches", headers))["data"]
    raw = _get(batch["results_url"], headers).decode()
    theirs = {json.loads(line)["custom_id"]: member_text(line, "result", "message")
              for line in raw.splitlines() if line.strip()}  # fmt: skip
    ours = _ours(out)
    assert len(ours) == 4 and ours == {i: theirs[i] for i in ours}


def test_a_result_line_is_rewritten_around_the_bytes_it_came_with() -> None:
    """Odd spacing and escapes in a Message survive the conversion to a result line."""
    message = b'{"id":  "m", "t": "\\u00e9"}'
    raw = b'{"custom_id": "2-k", "result": {"type": "succeeded", "message": ' + message + b"}}"
    line = result_bytes(raw)
    assert member_text(line.decode(), "response", "body") == '{"id":  "m", "t": "\\u00e9"}'
    assert json.loads(line)["id"] == "2-k" and json.loads(line)["custom_id"] == "2:k"


def test_gemini_batch_lines_keep_the_key_and_the_response_bytes(
    spawn_simulator: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    """Each output line's id is the Batch Mode result's key, its body that response's bytes."""
    sim = spawn_simulator()
    out = tmp_path / "out.jsonl"
    env = {"GEMINI_API_KEY": "test", "OPENAI_API_KEY": "", "FANWISE_MODEL": ""}
    _batch(_input(tmp_path / "in.jsonl", 3), out, env, "--provider", "gemini",
           "--base-url", sim.url + "/v1beta/openai")  # fmt: skip
    headers = {"x-goog-api-key": "test"}
    [operation] = json.loads(_get(sim.url + "/v1beta/batches", headers))["operations"]
    raw = _get(f"{sim.url}/v1beta/{operation['name']}", headers).decode()
    listed = member_text(raw, "response", "inlinedResponses", "inlinedResponses")
    assert listed is not None
    theirs = {
        json.loads(item)["metadata"]["key"]: member_text(item, "response")
        for item in items_text(listed)
    }
    ours = _ours(out)
    assert len(ours) == 3 and ours == {i: theirs[i] for i in ours}
