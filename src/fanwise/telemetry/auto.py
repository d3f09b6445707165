"""Spans with no fanwise set-up: an engine joins the tracer provider the program already has.

``attach`` runs once per engine. It costs one dictionary lookup when OpenTelemetry is not loaded,
and adds nothing to the observer when no provider was configured (the API's no-op default).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from fanwise.events import Event, Observer


def disabled(environ: Mapping[str, str] = os.environ) -> bool:
    """``OTEL_SDK_DISABLED=true``, or ``fanwise`` in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return True
    names = environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return "fanwise" in (name.strip() for name in names.split(","))


def attach(observer: Observer | None, *, model: object, store: object = None) -> Observer | None:
    """``observer``, plus spans and metrics when the program has an OpenTelemetry provider.

    ``model`` names the provider (``gen_ai.provider.name``); a journal ``store`` gives the run
    id. An observer that is already a ``Telemetry`` is left alone, so none is counted twice.
    """
    if "opentelemetry.trace" not in sys.modules or disabled():
        return observer
    from fanwise.telemetry.spans import Telemetry

    if _traced(observer, Telemetry):
        return observer
    run_id = getattr(store, "run_id", None)
    telemetry = Telemetry.from_globals(
        provider=getattr(model, "name", "") or "", run_id=None if run_id is None else str(run_id)
    )
    if telemetry is None:
        return observer
    return Traced(observer, telemetry)


class Traced:
    """An observer followed by telemetry; recognisable, so an engine handed an observer that
    already traces (or wraps one as ``.observer``) does not trace the same calls twice."""

    def __init__(self, observer: Observer | None, telemetry: Observer) -> None:
        self.observer = observer
        self.telemetry = telemetry

    def __call__(self, event: Event) -> None:
        if self.observer is not None:
            self.observer(event)
        self.telemetry(event)


def _traced(observer: object, telemetry: type) -> bool:
    """Whether ``observer`` already traces: a ``telemetry``, a ``Traced``, or a wrapper of one
    that keeps it as ``.observer``."""
    for _ in range(8):
        if observer is None:
            return False
        if isinstance(observer, Traced | telemetry):
            return True
        observer = getattr(observer, "observer", None)
    return False
