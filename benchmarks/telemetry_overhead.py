"""What OpenTelemetry costs the engine: CPU per call with tracing off, and with it on.

A model that answers at once isolates the engine and its observers (as ``console_overhead.py``
does). Modes, each run in a fresh child process so one cannot warm the other:

- ``off``: OpenTelemetry never imported (the default for every user who did not ask for it);
- ``loaded``: the OpenTelemetry API imported but no provider set (the engine adds nothing);
- ``spans``: the SDK's tracer and meter providers, a batch span processor, an exporter that drops;
- ``otlp``: the same, the exporter also encoding every span to OTLP protobuf (no network).

CPU time includes the span processor's thread; the providers are flushed before the clock stops.
Prints seconds, microseconds of CPU per call, and each mode's extra cost per call over ``off``. ::

    python benchmarks/telemetry_overhead.py                  # 20,000 calls at concurrency 500
    python benchmarks/telemetry_overhead.py --calls 2000 --modes off,spans
    PYTHONPATH=../other/src python benchmarks/telemetry_overhead.py --modes off   # another tree
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from fanwise import Completion, Engine, Plan, Request, Usage, run_workflow
from fanwise.models.base import DeltaSink

MODES = ("off", "loaded", "spans", "otlp")


class Instant:
    """A model that answers at once: all the time measured is fanwise's own."""

    @property
    def name(self) -> str:
        return "openai"

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        await asyncio.sleep(0)
        return Completion("ok", Usage(10, 5), model="gpt-5-2025-08-07", response_id="resp_1")


def providers(mode: str) -> Any:
    """Set the global providers for ``mode``; return what to flush, or None."""
    if mode == "off":
        return None
    from opentelemetry import trace

    if mode == "loaded":
        assert not hasattr(trace.get_tracer_provider(), "force_flush")
        return None
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def __init__(self, encode: bool) -> None:
            self.encode = encode
            self.bytes = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            if self.encode:
                from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

                self.bytes += len(encode_spans(spans).SerializeToString())
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop(encode=mode == "otlp")))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return tracer_provider


async def run(calls: int, concurrency: int) -> None:
    """One batch-like phase of ``calls`` calls, as ``fanwise batch`` would make them."""
    engine = Engine(Instant(), concurrency=concurrency)
    questions = tuple(f"question {n}" for n in range(calls))
    plan = Plan("benchmark", questions, title="overhead")
    # run_workflow: the run and phase spans too, and one synthesis call on top
    await run_workflow(plan, engine)


def child(mode: str, calls: int, concurrency: int) -> dict[str, float]:
    flush = providers(mode)
    asyncio.run(run(200, concurrency))  # warm up: imports, first spans
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(run(calls, concurrency))
    if flush is not None:
        flush.force_flush()
    loaded = any(name.startswith("opentelemetry") for name in sys.modules)
    return {
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "otel_loaded": float(loaded),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode; the best is kept")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.calls, args.concurrency)))
        return
    rows: dict[str, dict[str, float]] = {}
    for mode in args.modes.split(","):
        runs = []
        for _ in range(args.repeat):
            command = [sys.executable, __file__, "--child", mode, "--calls", str(args.calls)]
            command += ["--concurrency", str(args.concurrency)]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out))
        rows[mode] = min(runs, key=lambda r: r["cpu"])
    calls = args.calls + 1  # the synthesis call
    base = rows.get("off")
    print(
        f"{args.calls:,} calls (+1 synthesis) at concurrency {args.concurrency}, best of "
        f"{args.repeat}"
    )
    print(f"{'mode':8} {'wall s':>8} {'cpu s':>8} {'cpu µs/call':>12} {'extra µs/call':>14}")
    for mode, row in rows.items():
        per_call = row["cpu"] / calls * 1e6
        extra = "" if base is None else f"{(row['cpu'] - base['cpu']) / calls * 1e6:+14.1f}"
        print(f"{mode:8} {row['wall']:8.2f} {row['cpu']:8.2f} {per_call:12.1f} {extra}")
        if mode == "off":
            assert not row["otel_loaded"], "tracing off must not import OpenTelemetry"


if __name__ == "__main__":
    main()
