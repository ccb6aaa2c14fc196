"""OpenTelemetry tracer provider.

The SDK provider is always installed so every request has a real trace id for the audit trail and
the logs. Spans are recorded and exported only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_TRACES_EXPORTER`` is set; otherwise the sampler drops them at creation, which keeps the ids
(they are generated before sampling) but not the cost of recording spans that go nowhere.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

_installed = False


def exporting() -> bool:
    """Whether the standard OTEL_* variables ask for spans to be exported."""
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "")
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")) or exporter not in ("", "none")


def setup_tracing(service_name: str = "hitl-gateway") -> None:
    global _installed
    if _installed:
        return
    resource = Resource.create({"service.name": service_name})
    if exporting():
        # Sampler and exporter come from the standard OTEL_* variables.
        provider = TracerProvider(resource=resource)
    else:
        provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_OFF))
    trace.set_tracer_provider(provider)
    _installed = True
