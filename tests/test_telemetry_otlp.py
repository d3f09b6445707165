"""The CLI's OpenTelemetry export, checked at a real OTLP/HTTP receiver on 127.0.0.1.

The receiver is a small aiohttp server that decodes the protobuf requests the SDK's exporters
send (``/v1/traces``, ``/v1/metrics``), as a collector would; ``fanwise`` runs in a child
process on the offline model, so its exit hook flushes the spans exactly as a user's run does.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from fanwise.simulator import Simulator

pytestmark = pytest.mark.slow

CLIENT = 3  # SpanKind.SPAN_KIND_CLIENT in the protocol's enum


@dataclass
class Span:
    """One received span, flattened: ids in hex, attributes as plain values."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int


@dataclass
class Receiver:
    url: str
    spans: list[Span] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, list[Any]] = field(default_factory=dict)

    def named(self, prefix: str) -> list[Span]:
        return [s for s in self.spans if s.name.startswith(prefix)]

    def one(self, name: str) -> Span:
        found = [s for s in self.spans if s.name == name]
        assert len(found) == 1, f"{len(found)} spans named {name!r}"
        return found[0]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """An OTLP/HTTP (protobuf) receiver on 127.0.0.1 that keeps what it is sent."""
    found = Receiver("")

    async def traces(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in message.resource_spans:
            found.resources.append(_attributes(resource_spans.resource.attributes))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.spans.append(
                        Span(
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            span.kind,
                            _attributes(span.attributes),
                            [(e.name, _attributes(e.attributes)) for e in span.events],
                            span.status.code,
                        )
                    )
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def metrics(request: web.Request) -> web.Response:
        message = ExportMetricsServiceRequest.FromString(await request.read())
        for resource_metrics in message.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    found.metrics.setdefault(metric.name, []).extend(metric.histogram.data_points)
        body = ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}"
    yield found
    await runner.cleanup()


async def fanwise(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run ``python -m fanwise ARGS`` to the end while this loop keeps serving the receiver."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ.pop("OPENAI_API_KEY", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fanwise",
        *args,
        env={**environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


FAST = ("--offline-latency", "0.001,0.005", "--quiet")


async def test_travel_exports_one_trace_of_run_phases_and_calls(receiver: Receiver) -> None:
    """`fanwise travel Kyoto` with OTEL_EXPORTER_OTLP_ENDPOINT set exports 4 GenAI call spans
    under a run span and two phase spans, in one trace, with model and token attributes."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "kyoto-test"}
    code, stderr = await fanwise("travel", "Kyoto", *FAST, env=env)
    assert code == 0, stderr

    calls = receiver.named("chat ")
    run = receiver.one("workflow travel guide")
    research, synthesis = receiver.one("research"), receiver.one("synthesis")
    assert len(calls) == 4
    assert len(receiver.spans) == 7
    assert {s.trace_id for s in receiver.spans} == {run.trace_id}
    assert run.parent_id == ""
    assert research.parent_id == synthesis.parent_id == run.span_id
    assert Counter(s.parent_id for s in calls) == {research.span_id: 3, synthesis.span_id: 1}
    assert run.attributes["fanwise.run.id"] == "1"
    assert run.attributes["fanwise.run.status"] == "complete"
    for span in calls:
        assert span.name == "chat gpt-5"
        assert span.kind == CLIENT
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["gen_ai.provider.name"] == "fanwise.offline"
        assert span.attributes["gen_ai.request.model"] == "gpt-5"
        assert span.attributes["gen_ai.response.model"]
        assert span.attributes["gen_ai.usage.input_tokens"] > 0
        assert span.attributes["gen_ai.usage.output_tokens"] > 0
        assert "gen_ai.input.messages" not in span.attributes  # content is opt-in
        assert [name for name, _ in span.events] == ["fanwise.attempt"]
    assert receiver.resources[0]["service.name"] == "kyoto-test"
    durations = receiver.metrics["gen_ai.client.operation.duration"]
    assert sum(point.count for point in durations) == 4
    tokens = receiver.metrics["gen_ai.client.token.usage"]
    assert sum(point.count for point in tokens) == 8  # input and output for each call


async def test_a_thousand_calls_at_c200_each_under_its_phase(
    receiver: Receiver, tmp_path: Path
) -> None:
    """A 1,000-question plan at -c 200 exports 1,000 research spans, every one a child of the one
    research phase span, and no second trace."""
    questions = [f"Question {n} about {{city}}?" for n in range(1000)]
    plan = tmp_path / "wide.toml"
    plan.write_text(
        'title = "wide"\ntopic = "{city}"\n[variables]\ncity = "Kyoto"\n'
        f"[research]\nquestions = {json.dumps(questions)}\n",
        encoding="utf-8",
    )
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces"}
    code, stderr = await fanwise("run", str(plan), "-c", "200", *FAST, env=env)
    assert code == 0, stderr

    research = receiver.one("research")
    calls = receiver.named("chat ")
    assert len(calls) == 1001
    assert len({s.span_id for s in calls}) == 1001
    assert {s.trace_id for s in receiver.spans} == {research.trace_id}
    children = [s for s in calls if s.parent_id == research.span_id]
    assert len(children) == 1000
    assert sorted(s.attributes["fanwise.call.index"] for s in children) == list(range(1000))
    assert receiver.one("synthesis").span_id in {s.parent_id for s in calls}
    assert receiver.metrics == {}  # a traces endpoint alone exports no metrics


async def test_batch_file_gets_a_span_per_line(receiver: Receiver, tmp_path: Path) -> None:
    """`fanwise batch` at -c 200 exports one call span per line under the batch phase span, in
    one trace, each span naming its line's model."""
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        "".join(
            json.dumps({"custom_id": f"r{n}", "prompt": f"Say {n}", "model": "gpt-5-mini"}) + "\n"
            for n in range(1000)
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
    code, stderr = await fanwise("batch", str(lines), "-o", str(out), "-c", "200", *FAST, env=env)
    assert code == 0, stderr

    phase = receiver.one("batch")
    run = receiver.one("batch in.jsonl")
    calls = receiver.named("chat ")
    assert len(calls) == 1000
    assert {s.parent_id for s in calls} == {phase.span_id}
    assert phase.parent_id == run.span_id
    assert {s.trace_id for s in receiver.spans} == {run.trace_id}
    assert {s.name for s in calls} == {"chat gpt-5-mini"}


async def test_a_ray_run_is_one_trace_built_by_the_driver(receiver: Receiver) -> None:
    """With --engine ray the workers' call events reach the driver, whose spans put every call
    under its phase in one trace (skipped without the ray extra; `make test-ray` installs it)."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'fanwise[ray]'")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "RAY_ADDRESS": ""}
    code, stderr = await fanwise("travel", "Kyoto", "--engine", "ray", *FAST, env=env)
    assert code == 0, stderr

    research, synthesis = receiver.one("research"), receiver.one("synthesis")
    calls = receiver.named("chat ")
    assert len(calls) == 4
    assert Counter(s.parent_id for s in calls) == {research.span_id: 3, synthesis.span_id: 1}
    assert {s.trace_id for s in receiver.spans} == {research.trace_id}
    assert all(s.attributes["gen_ai.request.model"] == "gpt-5" for s in calls)


async def test_retries_are_attempt_events_on_one_call_span(receiver: Receiver) -> None:
    """With failing attempts, each call is still one span; its attempts are events with their
    status, and a call that gave up carries error.type and an error status."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
    flags = ("--offline-fail-rate", "0.6", "--retries", "2", "--seed", "3")
    code, stderr = await fanwise("travel", "Kyoto", *FAST, *flags, env=env)
    assert code in (0, 1, 4), stderr

    calls = receiver.named("chat")
    assert len({s.attributes["fanwise.call.index"] for s in calls}) == len(calls)
    retried = [s for s in calls if len(s.events) > 1]
    assert retried, "seed 3 at a 60 % fail rate retries some call"
    for span in calls:
        numbers = [attributes["fanwise.attempt.number"] for _, attributes in span.events]
        assert numbers == list(range(1, len(numbers) + 1))
        assert span.attributes["fanwise.call.attempts"] == len(numbers)
        last = span.events[-1][1]
        if "error.type" in span.attributes:
            assert span.status_code == 2  # STATUS_CODE_ERROR
            assert last["fanwise.attempt.status"] == "error"
        else:
            assert last["fanwise.attempt.status"] == "ok"
    assert any(
        attributes["fanwise.attempt.status"] == "error"
        for span in retried
        for _, attributes in span.events
    )


async def test_over_http_a_server_error_is_retried_and_a_bad_request_fails_the_span(
    receiver: Receiver, simulator: Simulator
) -> None:
    """Against the simulator over loopback HTTP: a 500 then an answer is one span with two
    attempt events; a 400 is one failed attempt, error.type bad_request and an error status."""
    simulator.script("top attractions", ["500", "ok"])
    simulator.script("cultural customs", ["400"])
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OPENAI_API_KEY": "sk-test-not-a-key"}
    flags = ("--provider", "openai", "--base-url", simulator.base_url, "--quiet")
    code, stderr = await fanwise("travel", "Kyoto", *flags, env=env)
    assert code == 4, stderr  # partial: one question failed

    research = receiver.one("research")
    by_index = {
        s.attributes["fanwise.call.index"]: s
        for s in receiver.named("chat")
        if s.parent_id == research.span_id
    }
    retried, ok, failed = by_index[0], by_index[1], by_index[2]
    assert retried.attributes["gen_ai.provider.name"] == "openai"
    assert [a["fanwise.attempt.status"] for _, a in retried.events] == ["error", "ok"]
    assert retried.events[0][1]["http.response.status_code"] == 500
    assert retried.events[0][1]["error.type"] == "server"
    assert retried.events[1][1]["fanwise.attempt.wait"] > 0
    assert "error.type" not in retried.attributes and retried.status_code == 0
    assert len(ok.events) == 1 and ok.attributes["gen_ai.response.model"]
    assert ok.attributes["gen_ai.response.finish_reasons"] == ["completed"]
    assert failed.attributes["error.type"] == "bad_request"
    assert failed.status_code == 2
    assert [a["http.response.status_code"] for _, a in failed.events] == [400]
    assert receiver.one("workflow travel guide").attributes["fanwise.run.status"] == "partial"
    assert "sk-test-not-a-key" not in repr(receiver.spans)


async def test_content_is_exported_only_when_asked(receiver: Receiver) -> None:
    """OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true adds the prompt and the answer."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
    }
    code, stderr = await fanwise("travel", "Kyoto", *FAST, env=env)
    assert code == 0, stderr
    research = receiver.one("research")
    span = next(s for s in receiver.named("chat") if s.parent_id == research.span_id)
    messages = json.loads(span.attributes["gen_ai.input.messages"])
    assert "Kyoto" in messages[0]["parts"][0]["content"]
    assert json.loads(span.attributes["gen_ai.output.messages"])[0]["role"] == "assistant"


async def test_grpc_protocol_is_refused_before_any_call(receiver: Receiver) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL=grpc with --otel is a one-line usage error (exit 2)."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    code, stderr = await fanwise("travel", "Kyoto", "--otel", *FAST, env=env)
    assert code == 2
    assert stderr.strip().splitlines() == [
        "fanwise: error: --otel: OTEL_EXPORTER_OTLP_PROTOCOL=grpc: fanwise exports OTLP over "
        "HTTP (http/protobuf) only; unset it, and point OTEL_EXPORTER_OTLP_ENDPOINT at the "
        "collector's HTTP port (4318)"
    ]
    assert receiver.spans == []
