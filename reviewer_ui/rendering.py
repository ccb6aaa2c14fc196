"""Pages and redirects of the reviewer UI: templates, security headers and the session cookie.

Every answer carries the same strict headers: the pages use no inline script or style, so the
content security policy can forbid both, and nothing is cached since every page shows one
reviewer's view of a queue that changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from reviewer_ui.sessions import Session, Sessions

HERE = Path(__file__).parent
PREFIX = "/ui"
"""Where the gateway mounts the UI; links and redirects start with it."""
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def template_env() -> Environment:
    """The page templates, every value HTML-escaped unless marked safe."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        enable_async=False,
    )
    env.globals["prefix"] = PREFIX
    return env


class Renderer:
    """Renders templates and redirects, each answer renewing the session cookie.

    Args:
        sessions: Writes the session and flash cookies.
        env: The page templates (`template_env`).
    """

    def __init__(self, sessions: Sessions, env: Environment) -> None:
        self._sessions = sessions
        self._env = env

    def render(
        self, request: Request, session: Session, name: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """Template ``name`` with ``context``, the session's CSRF token and its flash messages.

        The messages are shown once: the answer's cookie no longer carries them.
        """
        flash, session.flash = session.flash, []
        page = self._env.get_template(name).render(
            csrf=session.csrf, flash=flash, request=request, **context
        )
        response = HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)
        self._sessions.set_cookie(response, session, secure=request.url.scheme == "https")
        return response

    def redirect(self, request: Request, session: Session, path: str) -> Response:
        """A 303 to ``path`` under `PREFIX`, carrying the session's flash messages along."""
        response = RedirectResponse(PREFIX + path, status_code=303, headers=SECURITY_HEADERS)
        self._sessions.set_cookie(response, session, secure=request.url.scheme == "https")
        return response
