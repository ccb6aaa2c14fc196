"""The HTTP side: health endpoints now; the reviewer UI, auditor pages and metrics mount here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route


def health_app(
    ready: Callable[[], Awaitable[dict[str, bool]]], routes: Sequence[BaseRoute] = ()
) -> Starlette:
    """``/healthz`` answers while the process lives; ``/readyz`` when store and models serve.

    ``routes`` are mounted next to them (the reviewer UI).
    """

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        checks = await ready()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz), *routes])
