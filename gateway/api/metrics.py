"""``/metrics``: Prometheus text format, with the review queue gauges refreshed per scrape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.telemetry import metrics
from gateway.types import ReviewTask, TaskKind

_SCAN_LIMIT = 100_000
"""Most open tasks read per queue per scrape; bounds the cost of a scrape."""


def metrics_route(
    open_tasks: Callable[[TaskKind, int], Awaitable[list[ReviewTask]]],
) -> Route:
    """The route; ``open_tasks(kind, limit)`` lists open review tasks (the store's query)."""

    async def endpoint(_: Request) -> Response:
        now = datetime.now(UTC)
        for kind in TaskKind:
            tasks = await open_tasks(kind, _SCAN_LIMIT)
            metrics.set_queue(kind.value, ((t.tier, t.created_at) for t in tasks), now)
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    return Route("/metrics", endpoint)
