"""The HTTP side: health endpoints now; the reviewer UI, auditor pages, metrics, the
OpenAI-compatible chat API (`gateway.api.chat_routes`) and the Open Inference Protocol over REST
(`gateway.api.oip_rest`) mount here.

Every request except the probes and the metrics scrape runs in a server span (`TracingMiddleware`),
continuing an incoming W3C ``traceparent``, so what a reviewer does in the UI is logged and
audited under that request's trace id, as a gRPC call is (`gateway.api.handlers`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from opentelemetry import propagate, trace
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_tracer = trace.get_tracer("gateway.api.http")
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})
"""Probes and scrapes: frequent, never audited, and noise in a trace backend."""
_PROPAGATED = (b"traceparent", b"tracestate")


class TracingMiddleware:
    """A server span per HTTP request, child of the caller's ``traceparent`` when one is sent."""

    def __init__(self, app: ASGIApp, untraced: frozenset[str] = UNTRACED) -> None:
        self.app = app
        self.untraced = untraced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.untraced:
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _PROPAGATED
        }
        parent = propagate.extract(carrier) if "traceparent" in carrier else None
        method = scope["method"]
        # The path holds decision ids: an attribute, not the span name (names stay few).
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        with _tracer.start_as_current_span(
            method, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
        ) as span:
            if not span.is_recording():
                await self.app(scope, receive, send)
                return

            async def send_recorded(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(trace.StatusCode.ERROR)
                await send(message)

            await self.app(scope, receive, send_recorded)


def health_app(
    ready: Callable[[], Awaitable[dict[str, bool]]],
    routes: Sequence[BaseRoute] = (),
    warnings: Callable[[], dict[str, str]] = dict,
) -> Starlette:
    """``/healthz`` answers while the process lives; ``/readyz`` when store and models serve.

    ``/readyz`` also lists ``warnings``: what an operator must look at although the replica
    still serves (an old undelivered notification, checkpoints waiting for a time-stamp), so
    they never take it out of service. ``routes`` are mounted next to them (the reviewer UI).
    """

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        checks = await ready()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks, "warnings": warnings()},
            status_code=200 if ok else 503,
        )

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), *routes],
        middleware=[Middleware(TracingMiddleware)],
    )
