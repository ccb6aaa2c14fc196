"""OpenTelemetry tracer provider.

The SDK provider is always installed so every request has a real trace id for the audit trail and
the logs; spans are exported only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

_installed = False


def setup_tracing(service_name: str = "hitl-gateway") -> None:
    global _installed
    if _installed:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    trace.set_tracer_provider(provider)
    _installed = True


def tracer() -> trace.Tracer:
    return trace.get_tracer("gateway")
