"""The way into every page of the reviewer UI but sign-in: session, single sign-on and CSRF.

Who a request acts as is decided in `gateway.core.signin`; the guard only keeps the session in
step with it. A trusted proxy naming someone new gets a new SSO session (a new id and CSRF token,
so a POST is still accepted only with a token from a page this person was shown), and a session
whose person may no longer act is ended, so its cookie finds nothing on any replica.

Every form is a POST carrying the session's CSRF token; a POST without it changes nothing. A
domain error a page raises is shown inside the page layout with the status of the error table
(`reviewer_ui.errors`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.core.signin import SessionClaim, SignIn
from gateway.errors import GatewayError
from gateway.types import Account
from reviewer_ui.errors import refusal, status_for
from reviewer_ui.protocol import Handler
from reviewer_ui.rendering import PREFIX, SECURITY_HEADERS, Renderer
from reviewer_ui.sessions import Session, Sessions, csrf_ok

CSRF_REFUSED = (
    "The form's security token is missing or wrong; nothing was changed. "
    "Reload the page and try again."
)


def peer(request: Request) -> str:
    """The TCP peer's address ("" when unknown, which no trusted proxy list holds)."""
    return request.client.host if request.client else ""


class Guard:
    """Implements `reviewer_ui.protocol.Pages`: the guard, and the renderer it shows errors with.

    Args:
        renderer: Renders pages and redirects.
        sessions: The sign-in sessions.
        signin: The sign-in rules.
    """

    def __init__(self, renderer: Renderer, sessions: Sessions, signin: SignIn) -> None:
        self._renderer = renderer
        self._sessions = sessions
        self._signin = signin

    def render(
        self, request: Request, session: Session, name: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        return self._renderer.render(request, session, name, status, **context)

    def redirect(self, request: Request, session: Session, path: str) -> Response:
        return self._renderer.redirect(request, session, path)

    async def signed_in(self, request: Request) -> tuple[Session | None, Account | None]:
        """The request's session and the account it acts as, or None for either.

        Raises:
            GatewayError: Identity headers that may not be believed, a disabled account, or a
                store that cannot answer.
        """
        session = await self._sessions.get(request)
        claim = None if session is None else SessionClaim(session.user, session.sso)
        acting = await self._signin.acting(peer(request), request.headers, claim)
        account = acting.account
        if account is None:
            # The proxy stopped vouching, or the account is gone or disabled (ending a
            # visitor's session writes nothing).
            if session is not None:
                await self._sessions.end(session)
            return None, None
        if acting.asserted and (session is None or not session.sso or session.user != account.name):
            session = await self._sessions.sign_in(session, account.name, sso=True)
        return session, account

    async def guard(self, request: Request, handler: Handler, *, post: bool = False) -> Response:
        """Signed-in account, CSRF on POST, and domain errors shown as a page."""
        try:
            session, account = await self.signed_in(request)
        except GatewayError as exc:
            return refusal(exc)
        if session is None or account is None:
            if post:
                return HTMLResponse("Sign in first.", status_code=401, headers=SECURITY_HEADERS)
            return RedirectResponse(f"{PREFIX}/login", status_code=303)
        if post:
            form = await request.form()
            if not csrf_ok(session, form.get("csrf")):
                return self.render(
                    request, session, "error.html", 403, account=account, message=CSRF_REFUSED
                )
        try:
            return await handler(request, session, account)
        except GatewayError as exc:
            status = status_for(exc)
            return self.render(
                request, session, "error.html", status, account=account, message=exc.message
            )
