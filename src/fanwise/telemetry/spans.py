"""The observer that turns a run's events into spans: run, phase, call, batch job.

Every span is started with an explicit parent taken from this observer's own state (the run span,
the open phase span), never from the ambient context of whichever task emitted the event; the
ambient context is read only once, for the root, when nothing of fanwise's is open. So however
many calls run at once, each call span is a child of the phase it ran in, in one trace. Nothing
is attached to or detached from the context, so no token can cross a task.
"""

from __future__ import annotations

import functools
import importlib.metadata
import time
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.trace import (
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
)

from fanwise.events import (
    BatchProgress,
    CallSettled,
    CallStarted,
    Event,
    PhaseFinished,
    PhaseStarted,
    RunFinished,
    RunStarted,
)
from fanwise.outcome import Fulfilled, Rejected
from fanwise.redact import redact
from fanwise.telemetry import genai
from fanwise.telemetry.metrics import CallMetrics

SCOPE = "fanwise"
FINAL_BATCH_STATES = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(slots=True)
class _OpenCall:
    span: Span
    start_ns: int
    first_at: float  # the launch on the run's clock: attempt times are offsets from it
    model: str | None


@dataclass(slots=True)
class _OpenPhase:
    span: Span
    context: Context
    fulfilled: int = 0
    rejected: int = 0


@functools.cache
def _version() -> str | None:
    """fanwise's version, the instrumentation scope's (from the metadata: importing the package
    here would make a cycle, the engine importing telemetry)."""
    try:
        return importlib.metadata.version("fanwise")
    except importlib.metadata.PackageNotFoundError:
        return None


def configured(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> tuple[bool, bool]:
    """Whether the program set a real tracer provider and a real meter provider (not the API's
    no-op defaults)."""
    tracing = not isinstance(tracer_provider, ProxyTracerProvider | NoOpTracerProvider)
    proxy = type(meter_provider).__name__ == "_ProxyMeterProvider"  # the API's unset default
    return tracing, not proxy and not isinstance(meter_provider, NoOpMeterProvider)


class Telemetry:
    """An event observer: spans for the run, each phase, each call and batch job; GenAI metrics.

    ``provider`` is the model's ``gen_ai.provider.name`` (or a fanwise ``Model.name``);
    ``run_id`` the journal's run, so a trace and ``fanwise show RUN`` point at each other.
    Prompts and answers are recorded only with ``capture_content`` (by default, from
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``).
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        provider: str = "",
        run_id: str | None = None,
        capture_content: bool | None = None,
        time_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        tracers = tracer_provider or trace.get_tracer_provider()
        meters = meter_provider or metrics.get_meter_provider()
        self.provider = genai.provider_name(provider)
        self.run_id = run_id
        self.content = genai.capture_content() if capture_content is None else capture_content
        self.time_ns = time_ns
        self.tracer = tracers.get_tracer(SCOPE, _version())
        self.metrics = CallMetrics(meters.get_meter(SCOPE, _version()), self.provider)
        self._run: Span | None = None
        self._run_context: Context | None = None
        self._phase: _OpenPhase | None = None
        self._calls: dict[int, _OpenCall] = {}
        self._batches: dict[str, Span] = {}

    @classmethod
    def from_globals(cls, *, provider: str = "", run_id: str | None = None) -> Telemetry | None:
        """A ``Telemetry`` on the program's global providers, or None if it set neither."""
        tracers, meters = trace.get_tracer_provider(), metrics.get_meter_provider()
        tracing, metering = configured(tracers, meters)
        if not (tracing or metering):
            return None
        return cls(
            tracers if tracing else NoOpTracerProvider(),
            meters if metering else NoOpMeterProvider(),
            provider=provider,
            run_id=run_id,
        )

    def __call__(self, event: Event) -> None:
        match event:
            case CallStarted():
                self._call_started(event)
            case CallSettled():
                self._call_settled(event)
            case PhaseStarted():
                self._phase_started(event)
            case PhaseFinished():
                self._end_phase()
            case RunStarted():
                self._run_started(event)
            case RunFinished():
                self._run_finished(event)
            case BatchProgress():
                self._batch_progress(event)

    def close(self) -> None:
        """End every span still open (a run cut short without ``RunFinished``)."""
        self._run_finished(RunFinished("error", 0.0, "ended before the run finished"))

    def _parent(self) -> Context:
        if self._phase is not None:
            return self._phase.context
        if self._run_context is not None:
            return self._run_context
        return otel_context.get_current()

    def _run_started(self, event: RunStarted) -> None:
        if self._run is not None:  # a second run on this observer: close the first
            self.close()
        attributes: genai.Attributes = {
            "fanwise.run.kind": event.kind,
            "fanwise.run.name": event.name,
            "fanwise.run.topic": event.topic,
        }
        if self.run_id is not None:
            attributes["fanwise.run.id"] = self.run_id
        self._run = self.tracer.start_span(
            f"{event.kind} {event.name}" if event.name else event.kind,
            context=otel_context.get_current(),  # the caller's own span, read once
            attributes=attributes,
            start_time=self.time_ns(),
        )
        self._run_context = trace.set_span_in_context(self._run)

    def _run_finished(self, event: RunFinished) -> None:
        now = self.time_ns()
        for index in list(self._calls):
            call = self._calls.pop(index)
            call.span.set_attribute("error.type", "cancelled")
            call.span.set_status(Status(StatusCode.ERROR, "the run ended before the call settled"))
            call.span.end(now)
        for batch in self._batches.values():
            batch.end(now)
        self._batches.clear()
        self._end_phase()
        if self._run is None:
            return
        reason = redact(event.reason)[:500] if event.reason else None
        self._run.set_attribute("fanwise.run.status", event.status)
        if reason:
            self._run.set_attribute("fanwise.run.reason", reason)
        if event.status not in ("complete", "partial"):
            self._run.set_status(Status(StatusCode.ERROR, reason or event.status))
        self._run.end(now)
        self._run = self._run_context = None

    def _phase_started(self, event: PhaseStarted) -> None:
        self._end_phase()
        span = self.tracer.start_span(
            event.phase,
            context=self._run_context or otel_context.get_current(),
            attributes={"fanwise.phase": event.phase, "fanwise.phase.calls": event.total},
            start_time=self.time_ns(),
        )
        self._phase = _OpenPhase(span, trace.set_span_in_context(span))

    def _end_phase(self) -> None:
        phase, self._phase = self._phase, None
        if phase is None:
            return
        phase.span.set_attribute("fanwise.phase.fulfilled", phase.fulfilled)
        phase.span.set_attribute("fanwise.phase.rejected", phase.rejected)
        phase.span.end(self.time_ns())

    def _call_started(self, event: CallStarted) -> None:
        if event.index in self._calls:  # a retry: attempts are events, added when it settles
            return
        model = event.request.model if event.request is not None else None
        self._calls[event.index] = self._open(event.index, event.key, event.label, event, model)

    def _open(
        self, index: int, key: str, label: str, event: CallStarted | None, model: str | None
    ) -> _OpenCall:
        request = event.request if event is not None else None
        start = self.time_ns()
        span = self.tracer.start_span(
            genai.span_name(model),
            context=self._parent(),
            kind=SpanKind.CLIENT,
            attributes=genai.request_attributes(
                self.provider, index, key, label, request, self.content
            ),
            start_time=start,
        )
        return _OpenCall(span, start, event.at if event is not None else 0.0, model)

    def _call_settled(self, event: CallSettled) -> None:
        outcome = event.outcome
        call = self._calls.pop(event.index, None)
        if call is None:  # never sent: answered from the journal, or refused before it started
            model = outcome.value.model if isinstance(outcome, Fulfilled) else None
            call = self._open(event.index, event.key, event.label, None, model)
            call.first_at = outcome.started
        span = call.span
        if self._phase is not None:
            if isinstance(outcome, Rejected):
                self._phase.rejected += 1
            else:
                self._phase.fulfilled += 1
        self.metrics.record(call.model, outcome)
        if not span.is_recording():  # sampled out: nothing to describe
            span.end()
            return
        span.set_attributes(genai.outcome_attributes(outcome, self.content))
        record = event.record  # the engine's: the call priced once
        if record is not None and record.cost is not None:
            span.set_attribute("fanwise.call.cost_usd", record.cost)
        for attempt in outcome.attempts:
            offset = int((attempt.started - call.first_at) * 1e9)
            span.add_event(
                "fanwise.attempt",
                genai.attempt_attributes(attempt),
                timestamp=call.start_ns + max(offset, 0),
            )
        if isinstance(outcome, Rejected):
            span.set_status(Status(StatusCode.ERROR, genai.error_description(outcome)))
        span.end(self.time_ns())

    def _batch_progress(self, event: BatchProgress) -> None:
        span = self._batches.get(event.batch_id)
        if span is None:
            span = self._batches[event.batch_id] = self.tracer.start_span(
                "batch job",
                context=self._parent(),
                kind=SpanKind.CLIENT,
                attributes={"fanwise.batch.id": event.batch_id, "fanwise.batch.total": event.total},
                start_time=self.time_ns(),
            )
        span.add_event("fanwise.batch.status", {"fanwise.batch.status": event.status})
        if event.status in FINAL_BATCH_STATES:
            span.set_attributes(
                {
                    "fanwise.batch.status": event.status,
                    "fanwise.batch.completed": event.completed,
                    "fanwise.batch.failed": event.failed,
                }
            )
            if event.status != "completed":
                span.set_status(Status(StatusCode.ERROR, f"batch {event.status}"))
            span.end(self.time_ns())
            del self._batches[event.batch_id]
