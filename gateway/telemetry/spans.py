"""Child spans that cost next to nothing when nobody records them.

With the default set-up the sampler drops every span (see `gateway.telemetry.tracing`), but an
OpenTelemetry span still costs a few microseconds to create and attach even when dropped. The
decision path opens several per call, so `child_span` checks the current span first and only
starts a child under a recording parent: one attribute lookup when tracing is off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace

_tracer = trace.get_tracer("gateway.core")
_NOOP = contextlib.nullcontext()


def child_span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A span under the current one if that one is recording, else a shared no-op."""
    if not trace.get_current_span().is_recording():
        return _NOOP
    return _started(name, attributes)


@contextlib.contextmanager
def _started(name: str, attributes: dict[str, Any]) -> Iterator[trace.Span]:
    with _tracer.start_as_current_span(name, attributes=attributes) as span:
        yield span


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[trace.Span]:
    """A span that starts a trace of its own when there is no parent (verdicts, sweeps)."""
    return _tracer.start_as_current_span(name, attributes=attributes)
