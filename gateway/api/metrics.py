"""``/metrics``: Prometheus text format, with the review queue gauges refreshed per scrape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.telemetry import metrics
from gateway.types import TaskKind


def metrics_route(
    queue_stats: Callable[[TaskKind], Awaitable[list[tuple[str, int, datetime]]]],
) -> Route:
    """The route; ``queue_stats(kind)`` gives ``(tier, open tasks, oldest)`` (one SQL query)."""

    async def endpoint(_: Request) -> Response:
        now = datetime.now(UTC)
        for kind in TaskKind:
            metrics.set_queue(kind.value, await queue_stats(kind), now)
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    return Route("/metrics", endpoint)
