"""Signing in and out of the reviewer UI with a password.

These pages sit outside the guard, since a visitor has no account yet. Behind a trusted proxy
the proxy signs people in (see `gateway.core.signin`): the sign-in page then sends them on to
the queue, and identity headers from anyone else are refused here as on every page.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.core.signin import SignIn
from gateway.errors import GatewayError, RateLimited, Unauthenticated
from reviewer_ui.errors import refusal, status_for
from reviewer_ui.guard import peer
from reviewer_ui.protocol import Pages
from reviewer_ui.rendering import PREFIX
from reviewer_ui.sessions import Sessions, csrf_ok


def signin_routes(pages: Pages, sessions: Sessions, signin: SignIn) -> list[Route]:
    """The sign-in and sign-out routes, to register inside the UI app (under its prefix)."""
    routes = _SigninRoutes(pages, sessions, signin)
    return [
        Route("/login", routes.login_form, methods=["GET"]),
        Route("/login", routes.login, methods=["POST"]),
        Route("/logout", routes.logout, methods=["POST"]),
    ]


class _SigninRoutes:
    def __init__(self, pages: Pages, sessions: Sessions, signin: SignIn) -> None:
        self.pages = pages
        self.sessions = sessions
        self.signin = signin

    async def login_form(self, request: Request) -> Response:
        try:
            if self.signin.asserted(peer(request), request.headers) is not None:
                return RedirectResponse(f"{PREFIX}/", status_code=303)
        except GatewayError as exc:
            return refusal(exc)
        session, _ = await self.sessions.get_or_create(request)
        if session.user is not None:
            return self.pages.redirect(request, session, "/")
        return self.pages.render(request, session, "login.html", account=None)

    async def login(self, request: Request) -> Response:
        try:
            self.signin.asserted(peer(request), request.headers)  # refuses untrusted headers
        except GatewayError as exc:
            return refusal(exc)
        session, _ = await self.sessions.get_or_create(request)
        form = await request.form()
        if not csrf_ok(session, form.get("csrf")):
            session.flash.append(("error", "The sign-in form expired; please try again."))
            return self.pages.redirect(request, session, "/login")
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        # The throttle counts failures per client too; "?" keeps clients of unknown address
        # under one shared key rather than under none.
        client = request.client.host if request.client else "?"
        try:
            account = await self.signin.password(name, password, client)
        except (Unauthenticated, RateLimited) as exc:
            session.flash.append(("error", exc.message))
            return self.pages.render(request, session, "login.html", status_for(exc), account=None)
        session = await self.sessions.sign_in(session, account.name)
        return self.pages.redirect(request, session, "/")

    async def logout(self, request: Request) -> Response:
        session = await self.sessions.get(request)
        if session is None or not csrf_ok(session, (await request.form()).get("csrf")):
            # Only the form of a page this session was shown signs out; anything else (a form
            # on another site, or no live session) changes no cookie and goes to the queue.
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        await self.sessions.end(session)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        self.sessions.clear_cookie(response)
        return response
