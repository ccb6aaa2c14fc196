"""Domain errors as HTTP answers of the reviewer UI: one table, walked along the exception's MRO.

A guarded page shows a refusal inside its own layout (see `reviewer_ui.guard`); what fails before
anyone is known to be signed in (untrusted identity headers, a store that cannot record a
sign-in) gets the bare `refusal` with the same status.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.errors import (
    AlreadyExists,
    Conflict,
    GatewayError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    StoreUnavailable,
    Unauthenticated,
)
from reviewer_ui.rendering import SECURITY_HEADERS

HTTP_STATUS: dict[type[GatewayError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    AlreadyExists: 409,
    RateLimited: 429,
    # Nothing was recorded; a retry may succeed once the store is back.
    StoreUnavailable: 503,
}
"""Domain errors to HTTP status, walked along the exception's MRO; anything else is 500."""


def status_for(exc: GatewayError) -> int:
    """The HTTP status of ``exc``: that of its nearest class in `HTTP_STATUS`, else 500."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def refusal(exc: GatewayError) -> Response:
    """``exc``'s message as a bare page with its status (no layout: nobody is signed in)."""
    return HTMLResponse(
        html.escape(exc.message), status_code=status_for(exc), headers=SECURITY_HEADERS
    )


async def domain_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: a domain error outside a guarded page, as a `refusal`."""
    assert isinstance(exc, GatewayError)  # registered for GatewayError only
    return refusal(exc)
