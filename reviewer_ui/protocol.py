"""What every page module gets from the UI: a renderer and the guard, behind one small protocol.

Page modules take a `Pages` instead of the UI's concrete classes, so each one can be read (and
built) alone: it converts the request, awaits one core call and renders.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.types import Account
from reviewer_ui.sessions import Session

Handler = Callable[[Request, Session, Account], Awaitable[Response]]
"""A page behind the guard: called with the request, its session and the signed-in account."""


class Pages(Protocol):
    """The guard (sign-in, CSRF, errors as pages) and the renderer every page uses."""

    def render(
        self, request: Request, session: Session, name: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """Template ``name`` with ``context``, renewing the session cookie."""
        ...

    def redirect(self, request: Request, session: Session, path: str) -> Response:
        """A 303 to ``path`` under the UI's prefix, renewing the session cookie."""
        ...

    async def guard(self, request: Request, handler: Handler, *, post: bool = False) -> Response:
        """``handler``'s answer for a signed-in account (a valid CSRF token when ``post``)."""
        ...
