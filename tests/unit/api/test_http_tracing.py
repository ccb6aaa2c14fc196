"""The HTTP app's tracing: a server span per request, continuing the caller's traceparent, and
none around the probes and the metrics scrape."""

from __future__ import annotations

import secrets

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.api.http import health_app
from gateway.audit.events import current_trace_ids
from gateway.telemetry.tracing import setup_tracing


class Seen:
    """Records the trace id current when the app's ready check and routes run."""

    def __init__(self) -> None:
        self.trace_ids: list[str] = []

    async def ready(self) -> dict[str, bool]:
        self.trace_ids.append(current_trace_ids()[0])
        return {"store": True}

    async def route(self, _: Request) -> PlainTextResponse:
        trace_id = current_trace_ids()[0]
        self.trace_ids.append(trace_id)
        return PlainTextResponse(trace_id)


def _client(seen: Seen) -> httpx.AsyncClient:
    setup_tracing()  # as the gateway does at start: real ids even when nothing is exported
    routes = [Route("/ui/page", seen.route), Route("/metrics", seen.route)]
    app = health_app(seen.ready, routes)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_a_request_continues_the_callers_trace() -> None:
    """A page requested with a traceparent runs under that trace id."""
    seen = Seen()
    trace_id = secrets.token_hex(16)
    async with _client(seen) as client:
        header = f"00-{trace_id}-{secrets.token_hex(8)}-01"
        resp = await client.get("/ui/page", headers={"traceparent": header})
    assert resp.text == trace_id


async def test_a_request_without_a_traceparent_starts_a_trace() -> None:
    """A page requested with no traceparent (or a malformed one) runs under a fresh trace."""
    seen = Seen()
    async with _client(seen) as client:
        first = (await client.get("/ui/page")).text
        second = (await client.get("/ui/page", headers={"traceparent": "00-zz-zz-01"})).text
    for trace_id in (first, second):
        assert len(trace_id) == 32 and int(trace_id, 16) != 0
    assert first != second


async def test_probes_and_metrics_are_left_out_of_tracing() -> None:
    """/readyz and /metrics run with no current span, even when a traceparent is sent."""
    seen = Seen()
    header = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    async with _client(seen) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            resp = await client.get(path, headers={"traceparent": header})
            assert resp.status_code == 200, path
    assert seen.trace_ids == ["", ""]
