"""OpenTelemetry tracer provider.

The SDK provider is always installed so every request has a real trace id for the audit trail and
the logs. Spans are recorded and exported only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_TRACES_EXPORTER`` is set; otherwise the sampler drops them at creation, which keeps the ids
(they are generated before sampling) but not the cost of recording spans that go nowhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

_installed = False
_tracer = trace.get_tracer("gateway.cli")


def exporting() -> bool:
    """Whether the standard OTEL_* variables ask for spans to be exported."""
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "")
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")) or exporter not in ("", "none")


def _wants_otlp() -> bool:
    return "otlp" in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")


def shutdown_tracing() -> None:
    """Flush spans still queued for export (at shutdown)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()


def setup_tracing(service_name: str = "hitl-gateway") -> None:
    global _installed
    if _installed:
        return
    resource = Resource.create({"service.name": service_name})
    if exporting():
        # Sampler (OTEL_TRACES_SAMPLER), endpoint, headers, timeouts and batching
        # (OTEL_EXPORTER_OTLP_*, OTEL_BSP_*) are all read from the standard variables by the SDK.
        provider = TracerProvider(resource=resource)
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or _wants_otlp():
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_OFF))
    trace.set_tracer_provider(provider)
    _installed = True


@contextlib.contextmanager
def command_span(name: str) -> Iterator[trace.Span]:
    """A span around one command line action, so the audit events it writes carry a trace id.

    Installs the tracer provider first: without one every span has the all-zero, invalid
    context and the events would carry no id. When ``TRACEPARENT`` (and ``TRACESTATE``) is in
    the environment, the span continues that trace, as a job runner or script hands its trace
    to a process it starts (https://opentelemetry.io/docs/specs/otel/context/env-carriers/);
    otherwise it starts a trace of its own.
    """
    setup_tracing()
    carrier = {
        key.lower(): value
        for key in ("TRACEPARENT", "TRACESTATE")
        if (value := os.environ.get(key))
    }
    parent = propagate.extract(carrier) if "traceparent" in carrier else None
    with _tracer.start_as_current_span(name, context=parent) as span:
        yield span
