"""Spans and metrics from the engine's events, read back from the SDK's in-memory exporters.

Each test builds its own providers and hands a ``Telemetry`` to the engine, so no test touches
the process's global providers; the global path (no fanwise set-up at all) runs in a child.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from fanwise import Call, Engine, OfflineModel, OfflineSettings, Plan, RetryPolicy, run_workflow
from fanwise.api import aask_all
from fanwise.calls import SettledRecord
from fanwise.events import (
    BatchProgress,
    CallStarted,
    PhaseStarted,
    RunFinished,
    RunStarted,
)
from fanwise.models.base import Completion, Request, Usage
from fanwise.models.settings import ModelSettings
from fanwise.outcome import Fulfilled
from fanwise.retry import NoWait
from fanwise.simulator import Simulator
from fanwise.stages import Stage, Workflow, run_stages
from fanwise.telemetry import attach, disabled
from fanwise.telemetry.auto import Traced
from fanwise.telemetry.setup import wanted
from fanwise.telemetry.spans import Telemetry

PLAN = Plan("Kyoto", ("Q1?", "Q2?", "Q3?"), title="guide")


@dataclass
class Traces:
    telemetry: Telemetry
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    provider: TracerProvider

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def one(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans if s.name == name]
        assert len(found) == 1, [s.name for s in self.spans]
        return found[0]

    def calls(self) -> list[ReadableSpan]:
        return [s for s in self.spans if s.kind is SpanKind.CLIENT]

    def metric_points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        if data is None:  # nothing was ever recorded
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


def traces(capture_content: bool | None = None) -> Traces:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(provider, meters, provider="offline", capture_content=capture_content)
    return Traces(telemetry, exporter, reader, provider)


DISTRICTS = {
    "type": "object",
    "properties": {
        "districts": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}
    },
    "required": ["districts"],
}


def attr(item: ReadableSpan | Event, name: str) -> Any:
    """One attribute of a span or a span event (the SDK types them as any OTel value)."""
    assert item.attributes is not None
    return item.attributes[name]


def window(span: ReadableSpan) -> tuple[int, int]:
    """A finished span's start and end, in nanoseconds."""
    assert span.start_time is not None and span.end_time is not None
    return span.start_time, span.end_time


def attributes(span: ReadableSpan) -> Mapping[str, Any]:
    assert span.attributes is not None
    return span.attributes


def count(points: list[Any]) -> int:
    """Measurements in a histogram's data points."""
    return sum(int(point.count) for point in points)


def offline(fail_rate: float = 0.0, seed: int = 0) -> OfflineModel:
    return OfflineModel(OfflineSettings(seed, (0.0, 0.002), fail_rate))


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_workflow_is_a_run_span_over_phase_spans_over_call_spans() -> None:
    """Research calls are children of the research span, the synthesis of its own, both phases
    of the run span, all in one trace and nested in time."""
    t = traces()
    engine = Engine(offline(), observer=t.telemetry)
    await run_workflow(PLAN, engine)

    run, research, synthesis = t.one("workflow guide"), t.one("research"), t.one("synthesis")
    calls = t.calls()
    assert len(t.spans) == 7 and len(calls) == 4
    assert run.parent is None
    assert parent_of(research) == parent_of(synthesis) == run.context.span_id
    assert Counter(parent_of(s) for s in calls) == {
        research.context.span_id: 3,
        synthesis.context.span_id: 1,
    }
    assert {s.context.trace_id for s in t.spans} == {run.context.trace_id}
    for span in calls:
        parent = research if parent_of(span) == research.context.span_id else synthesis
        (start, end), (outer_start, outer_end) = window(span), window(parent)
        assert outer_start <= start <= end <= outer_end
        assert span.name == "chat gpt-5"
        assert attr(span, "gen_ai.request.model") == "gpt-5"
        assert attr(span, "gen_ai.usage.output_tokens") > 0
    assert attr(run, "fanwise.run.status") == "complete"
    assert attr(research, "fanwise.phase.fulfilled") == 3


async def test_staged_workflow_is_one_run_span_over_its_stages_calls() -> None:
    """Every call of a staged run (a map stage too) is in the run's trace, under its span,
    which ends with the run's status."""
    t = traces()
    workflow = Workflow(
        (
            Stage("outline", prompt="List three districts of Lyon.", schema=DISTRICTS),
            Stage("details", map="outline.districts", prompt="Describe {item}"),
            Stage("guide", prompt="Write a guide from these notes:\n{details}"),
        ),
        title="lyon",
    )
    result = await run_stages(workflow, Engine(offline(), observer=t.telemetry))

    run = t.one("stages lyon")
    assert run.parent is None and result.status.value == "complete"
    assert attr(run, "fanwise.run.status") == "complete"
    assert attr(run, "fanwise.run.kind") == "stages"
    assert len(t.calls()) == 5  # outline, three details, guide
    assert {s.context.trace_id for s in t.spans} == {run.context.trace_id}
    assert all(window(run)[0] <= window(s)[0] <= window(s)[1] <= window(run)[1] for s in t.spans)


async def test_ask_all_is_a_run_span_over_a_phase_over_its_calls() -> None:
    """``aask_all`` frames its calls as a run and a phase, so its trace has one root."""
    t = traces()
    outcomes = await aask_all(["a?", "b?", "c?"], model=offline(), on_event=t.telemetry, environ={})
    run, phase = t.one("ask_all"), t.one("batch")
    assert len(outcomes) == 3 and attr(run, "fanwise.run.status") == "complete"
    assert run.parent is None and parent_of(phase) == run.context.span_id
    assert [parent_of(s) for s in t.calls()] == [phase.context.span_id] * 3


async def test_concurrent_workflows_each_stay_under_their_callers_span() -> None:
    """Two workflows run at once, each inside its own caller span, at -c 50 with 200 calls each:
    every call lands under its own run's research span, and each run under its caller."""
    t = traces()
    tracer = t.provider.get_tracer("test")
    plan = Plan("wide", tuple(f"Q{n}?" for n in range(200)), title="wide")

    async def job(name: str) -> None:
        with tracer.start_as_current_span(name):
            telemetry = Telemetry(t.provider, provider="offline")
            await run_workflow(plan, Engine(offline(), concurrency=50, observer=telemetry))

    async with asyncio.TaskGroup() as group:
        group.create_task(job("job A"))
        group.create_task(job("job B"))

    for name in ("job A", "job B"):
        job_span = t.one(name)
        trace_id = job_span.context.trace_id
        run = next(
            s for s in t.spans if s.name == "workflow wide" and s.context.trace_id == trace_id
        )
        research = next(
            s for s in t.spans if s.name == "research" and s.context.trace_id == trace_id
        )
        assert parent_of(run) == job_span.context.span_id
        mine = [s for s in t.calls() if s.context.trace_id == trace_id]
        assert len(mine) == 201
        assert sum(parent_of(s) == research.context.span_id for s in mine) == 200
    assert len({s.context.trace_id for s in t.spans}) == 2


async def test_a_retried_call_is_one_span_with_an_event_per_attempt() -> None:
    """Retries add attempt events (status, wait, limiter hold) to one call span; a call that gave
    up has error.type and an error status, and metrics count each call once."""
    t = traces()
    engine = Engine(
        offline(fail_rate=0.7, seed=5),
        observer=t.telemetry,
        retry=RetryPolicy(retries=2),
        sleep=NoWait(),
    )
    outcomes = await engine.run([Call(Request.text(f"Q{n}?")) for n in range(20)])

    calls = t.calls()
    assert len(calls) == 20
    for span, outcome in zip(sorted(calls, key=_index), outcomes, strict=True):
        assert [attr(e, "fanwise.attempt.number") for e in span.events] == list(
            range(1, len(outcome.attempts) + 1)
        )
        assert all(attr(e, "fanwise.attempt.limiter_hold") >= 0 for e in span.events)
        if isinstance(outcome, Fulfilled):
            assert span.status.status_code is StatusCode.UNSET
        else:
            assert attr(span, "error.type") == outcome.kind.value
            assert span.status.status_code is StatusCode.ERROR
    assert any(len(s.events) > 1 for s in calls)
    durations = t.metric_points("gen_ai.client.operation.duration")
    assert count(durations) == 20


def _index(span: ReadableSpan) -> int:
    return int(attr(span, "fanwise.call.index"))


async def test_content_only_when_asked() -> None:
    """Prompts, instructions and answers are span attributes only with capture_content."""
    quiet, loud = traces(), traces(capture_content=True)
    for t in (quiet, loud):
        await Engine(offline(), observer=t.telemetry).run(
            [Call(Request.text("Where to eat?", instructions="Be brief."))]
        )
    (hidden,) = quiet.calls()
    (shown,) = loud.calls()
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output")) for k in attributes(hidden))
    assert "fanwise.call.label" not in attributes(hidden)
    assert "Where to eat?" in attr(shown, "gen_ai.input.messages")
    assert "Be brief." in attr(shown, "gen_ai.system_instructions")
    assert json.loads(attr(shown, "gen_ai.output.messages"))[0]["parts"][0]["content"]


class _Remembers:
    """A store that has every call answered already (a resume or the cache)."""

    def lookup(self, call: Call) -> Fulfilled[Completion] | None:
        return Fulfilled(Completion("kept", Usage(3, 4), model="gpt-5-2025"), 0.1, 0.0)

    def record(self, settled: SettledRecord) -> None:
        pass


async def test_a_cached_call_is_a_span_but_no_operation() -> None:
    """A call answered from the journal gets a span marked cached, and adds to no metric."""
    t = traces()
    await Engine(offline(), observer=t.telemetry, store=_Remembers()).run(
        [Call(Request.text("Q?"))]
    )
    (span,) = t.calls()
    assert attr(span, "fanwise.call.cached") is True
    assert span.name == "chat gpt-5-2025"
    assert t.metric_points("gen_ai.client.operation.duration") == []


def test_an_interrupted_run_ends_every_open_span() -> None:
    """A run that raised (Ctrl-C) ends its open call, phase and run spans, marked as such."""
    t = traces()
    observe = t.telemetry
    observe(RunStarted("workflow", "guide", "Kyoto", 0.0))
    observe(PhaseStarted("research", 1, 0.0))
    observe(CallStarted(0, "k", "Q?", 1, 0.0, Request.text("Q?")))
    observe(RunFinished.raised(KeyboardInterrupt(), 1.0))
    call, phase, run = t.calls()[0], t.one("research"), t.one("workflow guide")
    assert attr(call, "error.type") == "cancelled"
    assert attr(run, "fanwise.run.status") == "interrupted"
    assert run.status.status_code is StatusCode.ERROR
    assert phase.end_time is not None


def test_each_batch_job_is_a_span_until_it_ends() -> None:
    """A Batch API job is one span from its first progress report to its final status."""
    t = traces()
    observe = t.telemetry
    observe(PhaseStarted("batch", 4, 0.0))
    for status in ("validating", "in_progress", "completed"):
        observe(BatchProgress("batch_1", status, 2, 0, 2, 0.0))
    observe(BatchProgress("batch_2", "expired", 0, 0, 2, 0.0))
    jobs = {attr(s, "fanwise.batch.id"): s for s in t.spans if s.name == "batch job"}
    assert set(jobs) == {"batch_1", "batch_2"}
    assert len(jobs["batch_1"].events) == 3
    assert jobs["batch_1"].status.status_code is StatusCode.UNSET
    assert jobs["batch_2"].status.status_code is StatusCode.ERROR


def test_attach_adds_nothing_without_a_provider_or_twice() -> None:
    """With no global provider the observer is returned as is; an observer that already traces
    is not traced again (the Batch API engine wraps its live retries' observer)."""

    def observer(event: object) -> None:
        pass

    assert attach(observer, model=offline()) is observer  # the API's no-op default
    traced = Traced(observer, traces().telemetry)

    class Wrapper:
        def __init__(self) -> None:
            self.observer = traced

        def __call__(self, event: object) -> None:
            pass

    wrapper = Wrapper()
    assert attach(wrapper, model=offline()) is wrapper


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        (False, {}, False),
        (True, {}, True),
        (False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        (False, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h:4318/v1/traces"}, True),
        (True, {"OTEL_SDK_DISABLED": "true"}, False),
        (True, {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "aiohttp, fanwise"}, False),
    ],
)
def test_when_the_cli_exports(flag: bool, environ: dict[str, str], expected: bool) -> None:
    """--otel or an OTLP endpoint turns export on; the standard off-switches win."""
    assert wanted(flag, environ) is expected
    assert disabled(environ) is (
        "OTEL_SDK_DISABLED" in environ or "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS" in environ
    )


def _child(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def test_import_and_a_run_without_tracing_load_no_opentelemetry() -> None:
    """`import fanwise`, and a whole CLI run with no OTLP endpoint, never import OpenTelemetry."""
    loaded = _child(
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import fanwise\n"
        "print(any(m.startswith('opentelemetry') for m in sys.modules))\n"
        "from fanwise.cli import cli\n"
        "r = CliRunner().invoke(cli, ['travel', 'Kyoto', '--offline-latency', '0,0.001',"
        " '--quiet', '--provider', 'offline'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(any(m.startswith('opentelemetry') for m in sys.modules))\n"
    )
    assert loaded.split() == ["False", "False"]


def test_a_program_with_its_own_tracer_provider_gets_spans_with_no_setup() -> None:
    """A program that set a global tracer provider gets fanwise's spans, under its own span,
    with nothing fanwise-specific in its code."""
    out = _child(
        "import asyncio, json\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import"
        " InMemorySpanExporter\n"
        "exporter = InMemorySpanExporter()\n"
        "provider = TracerProvider()\n"
        "provider.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "trace.set_tracer_provider(provider)\n"
        "import fanwise\n"
        "async def main():\n"
        "    model = fanwise.OfflineModel(fanwise.OfflineSettings(0, (0, 0.001)))\n"
        "    with trace.get_tracer('app').start_as_current_span('my job'):\n"
        "        plan = fanwise.Plan('Kyoto', ('A?', 'B?'), title='guide')\n"
        "        await fanwise.run_workflow(plan, fanwise.Engine(model))\n"
        "asyncio.run(main())\n"
        "spans = exporter.get_finished_spans()\n"
        "ids = {s.context.span_id: s.name for s in spans}\n"
        "print(json.dumps(sorted([s.name, ids.get(s.parent.span_id if s.parent else 0, '')]"
        " for s in spans)))\n"
    )
    assert json.loads(out) == [
        ["chat gpt-5", "research"],
        ["chat gpt-5", "research"],
        ["chat gpt-5", "synthesis"],
        ["my job", ""],
        ["research", "workflow guide"],
        ["synthesis", "workflow guide"],
        ["workflow guide", "my job"],
    ]


async def test_sampled_out_calls_still_count_in_metrics() -> None:
    """A sampler that drops every trace leaves no span, and the metrics still count each call."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(provider, MeterProvider(metric_readers=[reader]), provider="offline")
    t = Traces(telemetry, exporter, reader, provider)
    await run_workflow(PLAN, Engine(offline(), observer=telemetry))
    assert t.spans == ()
    assert count(t.metric_points("gen_ai.client.operation.duration")) == 4


def _cli_without_the_extra(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``fanwise ARGS`` in a child where the OTLP exporter cannot be imported."""
    code = (
        "import sys\n"
        "sys.modules['opentelemetry.exporter.otlp.proto.http.trace_exporter'] = None\n"
        "from fanwise.cli import main\n"
        f"sys.argv = ['fanwise', *{list(args)!r}]\n"
        "main()\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**environ, **env},
    )


def test_without_the_extra_otel_is_a_usage_error_and_the_variable_a_warning() -> None:
    """--otel without the otel extra exits 2 with the pip command; an endpoint variable alone
    warns and the run goes on."""
    fast = ("travel", "Kyoto", "--offline-latency", "0,0.001", "--quiet")
    asked = _cli_without_the_extra(*fast, "--otel", env={})
    assert asked.returncode == 2
    assert asked.stderr.strip() == (
        "fanwise: error: --otel: OpenTelemetry export needs the otel extra "
        "(opentelemetry.exporter.otlp.proto.http.trace_exporter is missing): "
        "pip install 'fanwise[otel]'"
    )
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    told = _cli_without_the_extra(*fast, env=endpoint)
    assert told.returncode == 0, told.stderr
    assert told.stderr.startswith("fanwise: warning: no OpenTelemetry export: ")
    assert "# Kyoto" in told.stdout


async def test_failed_attempts_tokens_count_in_metrics_spans_and_the_report(
    simulator: Simulator, tmp_path: Path
) -> None:
    """A batch whose first line breaks its schema then passes and whose second is refused: the
    token metric, the call spans and the report's tokens card all equal the batch summary's."""
    from fanwise.batch import run_batch
    from fanwise.cli.report_cmd import report_html
    from fanwise.journal import Journal, JournalStore
    from fanwise.models.fast import FastOpenAIModel
    from fanwise.prices import load_prices
    from fanwise.schemas import to_strict

    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string"}},
        "required": ["summary"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": to_strict(schema)}}
    lines = [
        json.dumps({"custom_id": q, "method": "POST", "url": "/v1/chat/completions",
                    "body": {"messages": [{"role": "user", "content": q}], "response_format": fmt}})
        for q in ("Sights?", "Secrets?")
    ]  # fmt: skip
    simulator.script("Sights", ["schema"])
    simulator.script("Secrets", ["refuse"])
    t = traces()
    journal = Journal.open(tmp_path / "journal.db")
    run_id = journal.start_run("batch", "in.jsonl", {}, endpoint="sim", total=2)
    store = JournalStore(journal, run_id, prices=load_prices(), endpoint="sim")
    model = FastOpenAIModel(api_key="k", base_url=simulator.base_url)
    engine = Engine(model, observer=t.telemetry, store=store, sleep=NoWait())
    summary = await run_batch(
        lines, engine, lambda _: None, defaults=ModelSettings(model="gpt-5"), validate=True
    )
    await model.aclose()
    assert (summary.fulfilled, summary.rejected) == (1, 1)
    sent = sum(json.loads(body)["usage"]["total_tokens"] for body in simulator.sent)
    assert len(simulator.sent) == 3 and summary.usage.total_tokens == sent
    metered = sum(int(p.sum) for p in t.metric_points("gen_ai.client.token.usage"))
    assert metered == summary.usage.total_tokens
    spanned = sum(
        attr(s, "gen_ai.usage.input_tokens") + attr(s, "gen_ai.usage.output_tokens")
        for s in t.calls()
    )
    assert spanned == summary.usage.total_tokens
    journal.finish_run(run_id, summary.status, summary=summary.to_dict())
    record = journal.run(run_id)
    assert record is not None
    page = report_html(record, journal.latest_calls(run_id))
    assert f"<dt>tokens</dt><dd>{summary.usage.total_tokens:,}</dd>" in page
    journal.close()
