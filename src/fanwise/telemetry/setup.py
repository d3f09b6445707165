"""The command line's OpenTelemetry set-up: OTLP over HTTP (protobuf), configured the standard way.

When ``--otel`` is given or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its ``_TRACES_`` form) is set,
the CLI installs the SDK's tracer and meter providers with OTLP/HTTP exporters. The exporters read
the standard variables themselves (endpoints, headers, timeout, compression, certificates), the
resource reads ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``, the span processor the
``OTEL_BSP_*`` ones. Engines then join those providers on their own (``telemetry.attach``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from fanwise.outcome import FanwiseError
from fanwise.telemetry.auto import disabled

INSTALL = "pip install 'fanwise[otel]'"


class TelemetryError(FanwiseError):
    """OpenTelemetry was asked for but cannot be set up (the extra is missing, a bad setting)."""


def wanted(flag: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether to export: ``--otel``, or an OTLP endpoint in the environment."""
    if disabled(environ):
        return False
    return flag or bool(_traces_endpoint(environ))


def _traces_endpoint(environ: Mapping[str, str]) -> str:
    return environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", ""
    )


@dataclass(frozen=True, slots=True)
class Exporting:
    """What was set up; each provider flushes and shuts down at exit (the SDK's own hook)."""

    traces: bool
    metrics: bool


def configure(flag: bool = False, environ: Mapping[str, str] = os.environ) -> Exporting | None:
    """Install OTLP/HTTP exporting as the process's providers, if ``wanted``; None if not.

    Traces go out when ``--otel`` or a traces endpoint asks; metrics when ``--otel``, the common
    endpoint or ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` does. ``OTEL_TRACES_EXPORTER`` or
    ``OTEL_METRICS_EXPORTER`` set to ``none`` turns either off.
    """
    if not wanted(flag, environ):
        return None
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        protocol = environ.get(name, "http/protobuf")
        if protocol != "http/protobuf":
            raise TelemetryError(
                f"{name}={protocol}: fanwise exports OTLP over HTTP (http/protobuf) only; unset "
                "it, and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (4318)"
            )
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TelemetryError(
            f"OpenTelemetry export needs the otel extra ({exc.name} is missing): {INSTALL}"
        ) from None
    from fanwise.telemetry.spans import configured

    if any(configured(trace.get_tracer_provider(), metrics.get_meter_provider())):
        return None  # the program set its own providers: those win (and set-up runs once)
    resource = Resource.create(_default_service(environ))
    traces = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() != "none"
    metered = flag or bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )
    metered = metered and environ.get("OTEL_METRICS_EXPORTER", "otlp").strip().lower() != "none"
    if traces:
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(tracer_provider)
    if metered:
        reader = PeriodicExportingMetricReader(OTLPMetricExporter())
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    return Exporting(traces, metered)


def _default_service(environ: Mapping[str, str]) -> dict[str, str]:
    """``service.name`` is ``fanwise`` unless the environment names the service."""
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    return {} if named else {"service.name": "fanwise"}
