"""What every authenticated HTTP API call goes through (the OpenAI-compatible chat endpoint,
the Open Inference Protocol over REST), as gRPC calls go through `gateway.api.handlers`:
the bounds on calls in progress, bearer-key authentication with the ``app`` role, a bounded
body, and the error table (`gateway.api.http_errors`). The server span is the HTTP
middleware's (`gateway.api.http.TracingMiddleware`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.http_errors import HttpError, http_error_for
from gateway.core.auth import APP_ROLES, KeyAuthenticator, Principal
from gateway.errors import TooLarge

__all__ = ["guarded", "read_body"]

log = structlog.get_logger("gateway.api.http")

Behaviour = Callable[[Request, Principal], Awaitable[Response]]
ErrorResponse = Callable[[BaseException, HttpError | None], Response]
"""Renders an error in the API's own body format; None: unexpected (answer 500, generic)."""


async def guarded(
    request: Request,
    auth: KeyAuthenticator,
    behaviour: Behaviour,
    error_response: ErrorResponse,
) -> Response:
    """Run ``behaviour`` for an authenticated ``app`` key; any exception becomes the API's
    error response (unexpected ones logged, never shown)."""
    slots = auth.slots
    try:
        with slots.call():
            principal = await auth.admit(request.headers.get("authorization"))
            principal.require_role(APP_ROLES)
            with slots.key(principal.key_id):
                return await behaviour(request, principal)
    except Exception as exc:
        mapped = http_error_for(exc)
        path = request.url.path
        if mapped is None:
            log.error("http.internal_error", path=path, exc_info=exc)
        elif mapped.status != 202:
            log.info("http.refused", path=path, status=mapped.status, error=str(exc))
        return error_response(exc, mapped)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (TooLarge) once it passes ``limit`` bytes, before reading
    the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge("body", f"larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge("body", f"larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
