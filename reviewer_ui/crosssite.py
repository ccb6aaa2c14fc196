"""Requests that come from another site, and so without the session cookie.

The session cookie is ``SameSite=Strict``: the browser leaves it out of every request another
site starts, a plain link included. Answering such a request as a visitor's would set a fresh
visitor cookie over the reviewer's own and sign them out (a link on any page would do it). So
a request that lacks the session cookie because of where it came from changes no cookie: a
page load gets a page that loads the same address again, now from this site, so the session
cookie is sent; a form is refused.

Where it came from is what the browser says in ``Sec-Fetch-Site``. A browser that does not
send it still sends the ``SameSite=Lax`` companion cookie that every signed-in page sets (Lax
cookies go with top-level links from other sites); that cookie without the session cookie
means the same. The page that loads the address again deletes the companion, so a missing
session cookie cannot make it load forever; the next signed-in page sets it again.
See https://developer.mozilla.org/docs/Web/HTTP/Headers/Sec-Fetch-Site.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from urllib.parse import quote

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from reviewer_ui.sessions import COOKIE, SIGNED_IN_COOKIE

_AGAIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0; url={url}">
<title>hitl-gateway</title></head>
<body><p><a href="{url}">Continue to the review queue</a></p></body></html>
"""


def from_elsewhere(request: Request) -> bool:
    """Whether the request lacks the session cookie only because another site started it."""
    if COOKIE in request.cookies:
        return False
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "cross-site"
    return SIGNED_IN_COOKIE in request.cookies


class CrossSiteGuard:
    """ASGI middleware: requests from another site without the session cookie change nothing.

    Args:
        app: The reviewer UI.
        headers: Headers of every answer (the UI's security headers).
    """

    def __init__(self, app: ASGIApp, *, headers: Mapping[str, str]) -> None:
        self._app = app
        self._headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not from_elsewhere(request := Request(scope)):
            await self._app(scope, receive, send)
            return
        response: Response
        if request.method in ("GET", "HEAD"):
            response = HTMLResponse(_AGAIN.format(url=_same_address(scope)), headers=self._headers)
            response.delete_cookie(SIGNED_IN_COOKIE, path="/", httponly=True, samesite="lax")
        else:
            response = HTMLResponse(
                "This form was sent from another site; nothing was changed.",
                status_code=403,
                headers=self._headers,
            )
        await response(scope, receive, send)


def cross_site_guard(headers: Mapping[str, str]) -> Middleware:
    """The guard as a Starlette middleware entry, answering with ``headers``."""
    return Middleware(CrossSiteGuard, headers=headers)


def _same_address(scope: Scope) -> str:
    """The request's path and query, escaped for an HTML attribute."""
    path = quote(scope["path"], safe="/:@!$&()*+,=-._~")
    if not path.startswith("/") or path.startswith("//"):  # never another host
        path = "/"
    query = quote(scope.get("query_string", b"").decode("latin-1"), safe="=&+%/:@!$()*,-._~?")
    return html.escape(f"{path}?{query}" if query else path, quote=True)
