"""OpenTelemetry for fanwise: a span per run, phase and call, and the GenAI client metrics.

An observer of the engine's events, like the console: it builds every span from those events with
an explicit parent, so a fan-out of any width lands in one trace with each call under its phase.
Nothing here imports OpenTelemetry until a tracer or meter provider exists to receive the spans:
``attach`` looks only at ``sys.modules`` (docs/observability.md).
"""

from fanwise.telemetry.auto import attach, disabled

__all__ = ["attach", "disabled"]
