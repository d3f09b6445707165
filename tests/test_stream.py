"""The synthesis streams to stdout as it is written; a restart never repeats text unannounced."""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fanwise import Completion, Engine, Plan, Request, RetryPolicy, Usage, run_workflow
from fanwise.events import fan_out
from fanwise.models.base import DeltaSink, Model
from fanwise.models.openai import OpenAIModel
from fanwise.outcome import CallError, ServerError
from fanwise.retry import NoWait
from fanwise.simulator import Simulator
from fanwise.ui.stream import SynthesisStream
from tests.processes import run_fanwise

PLAN = Plan("Kyoto", ("sights?", "transport?"), title="travel guide")
GUIDE = "# Kyoto\n\nTemples at dawn, trains after nine, and quiet voices everywhere."


class Pipe(io.StringIO):
    """A stdout that cannot seek, as a pipe into ``less`` or ``tee`` cannot."""

    def seekable(self) -> bool:
        return False


class Writes(io.StringIO):
    """A stdout that remembers each write, to show the text arrived piece by piece."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@dataclass
class BreakingModel(Model):
    """Answers research at once; the synthesis streams ``breaks`` partial attempts that fail
    mid-stream with ``error``, then streams the whole guide (``stream=False``: no deltas)."""

    breaks: int = 0
    error: CallError = field(default_factory=lambda: ServerError("stream cut", status_code=502))
    stream: bool = True
    synthesis_attempts: int = 0

    @property
    def name(self) -> str:
        return "breaking"

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        if not request.prompt.startswith(PLAN.synthesis_instructions[:20]):
            return Completion(f"answer to {request.prompt}", Usage(5, 5))
        self.synthesis_attempts += 1
        words = [w + " " for w in GUIDE.split(" ")]
        words[-1] = words[-1].rstrip()
        if self.synthesis_attempts <= self.breaks:
            for word in words[:5]:
                if on_delta is not None:
                    on_delta(word)
            raise self.error
        if on_delta is not None and self.stream:
            for word in words:
                on_delta(word)
        return Completion(GUIDE, Usage(50, 20))


async def synthesize(
    model: BreakingModel, out: IO[str], retries: int = 2
) -> tuple[SynthesisStream, str]:
    """Run the workflow with the writer on ``out``; return it and what it said on stderr."""
    err = io.StringIO()
    stream = SynthesisStream(out, err)
    engine = Engine(
        model,
        retry=RetryPolicy(retries=retries),
        sleep=NoWait(),
        observer=fan_out(stream.observe),
    )
    await run_workflow(PLAN, engine, on_delta=stream)
    return stream, err.getvalue()


async def test_the_text_arrives_piece_by_piece_and_once() -> None:
    """Each delta is written as it comes; the result is the guide once, ending in a newline."""
    out = Writes()
    stream, _ = await synthesize(BreakingModel(), out)
    assert stream.delivered and out.getvalue() == GUIDE + "\n"
    assert len(out.writes) > 5


async def test_a_restart_is_cut_from_a_file(tmp_path: Path) -> None:
    """stdout redirected to a file: the broken attempt's text is truncated away; stderr says so."""
    path = tmp_path / "guide.md"
    with path.open("w+", encoding="utf-8") as out:
        out.write("already there\n")
        stream, note = await synthesize(BreakingModel(breaks=1), out)
    assert path.read_text(encoding="utf-8") == "already there\n" + GUIDE + "\n"
    assert stream.delivered and stream.restarts == 1
    assert "synthesis attempt 1 failed after" in note and "removed from the output file" in note


async def test_a_restart_on_a_pipe_is_announced_on_stderr() -> None:
    """A pipe cannot take text back: stderr says the text before the note is not the final one."""
    out = Pipe()
    stream, note = await synthesize(BreakingModel(breaks=1), out)
    partial = "# Kyoto\n\nTemples at dawn, trains "
    assert out.getvalue() == partial + GUIDE + "\n"
    assert (
        "synthesis attempt 1 failed after 33 characters had streamed (server: stream cut)" in note
    )
    assert "attempt 2 starts over" in note and "not the final text" in note
    assert stream.delivered and stream.restarts == 1


class TerminalOut(Pipe):
    """A stdout that is a terminal: no seeking, and a person reading along."""

    def isatty(self) -> bool:
        return True


async def test_a_restart_in_a_terminal_starts_on_a_fresh_line() -> None:
    """In a terminal the broken text is ended with a newline before the new attempt's text."""
    out = TerminalOut()
    stream, note = await synthesize(BreakingModel(breaks=1), out)
    assert out.getvalue() == "# Kyoto\n\nTemples at dawn, trains \n" + GUIDE + "\n"
    assert stream.delivered and "not the final text" in note


async def test_a_synthesis_that_fails_after_streaming_is_called_incomplete() -> None:
    """When every attempt breaks, nothing is delivered and stderr calls the text incomplete."""
    out = Pipe()
    stream, note = await synthesize(BreakingModel(breaks=9), out, retries=1)
    assert not stream.delivered
    assert note.count("starts over") == 1 and "that text is incomplete" in note


async def test_a_model_that_does_not_stream_still_prints_once() -> None:
    """No deltas at all (a cached answer, a model without streaming): the text is written whole."""
    out = Pipe()
    stream, _ = await synthesize(BreakingModel(stream=False), out)
    assert stream.delivered and out.getvalue() == GUIDE + "\n"


async def test_the_openai_model_streams_through_the_writer(simulator: Simulator) -> None:
    """Over real loopback HTTP the guide streams in pieces and ends exactly as returned."""
    model = OpenAIModel(api_key="test", base_url=simulator.base_url)
    out, err = Writes(), io.StringIO()
    stream = SynthesisStream(out, err)
    engine = Engine(model, observer=fan_out(stream.observe))
    result = await run_workflow(PLAN, engine, on_delta=stream)
    await model.aclose()
    assert result.text and stream.delivered
    assert out.getvalue() == result.text + ("" if result.text.endswith("\n") else "\n")
    assert len(out.writes) > 3 and err.getvalue() == ""


def fanwise(*args: str) -> subprocess.CompletedProcess[str]:
    return run_fanwise(*args, env={"OPENAI_API_KEY": None})


def test_the_piped_cli_prints_the_guide_exactly_once() -> None:
    """Through a pipe the streamed guide is the JSON's synthesis text, once, and nothing else."""
    flags = ("travel", "Kyoto", "--offline-latency", "0.01,0.05")
    streamed, as_json = fanwise(*flags), fanwise(*flags, "--json")
    assert streamed.returncode == 0 and as_json.returncode == 0, streamed.stderr
    text = json.loads(as_json.stdout)["synthesis"]["text"]
    assert streamed.stdout == text + ("" if text.endswith("\n") else "\n")
    assert "🔄 Asking" in streamed.stderr and "\x1b[" not in streamed.stderr
