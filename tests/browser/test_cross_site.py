"""Links and forms on another site, followed in real Chromium, never sign a reviewer out.

The other site is a small HTTP server reached as ``localhost`` while the UI is reached as
``127.0.0.1``: two different sites to the browser, so the session cookie (SameSite=Strict) is
left out of every request the other site's page starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from gateway.types import Role
from reviewer_ui.sessions import COOKIE
from tests.browser.conftest import login
from tests.browser.gatewaythread import GatewayThread

PageFactory = Callable[[], Page]


class _OtherSite(BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def other_site(gw: GatewayThread) -> Iterator[str]:
    """The address of a page on another site with a plain link and a form aimed at the UI."""
    ui = gw.url
    _OtherSite.page = (
        f'<!doctype html><a id="link" href="{ui}/ui/">review queue</a>'
        f'<form id="logout" method="post" action="{ui}/ui/logout">'
        '<button id="send" type="submit">send</button></form>'
    ).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(10)


def _session_cookie(page: Page) -> str | None:
    """The session cookie the browser holds for the UI, if any."""
    return next((c["value"] for c in page.context.cookies() if c["name"] == COOKIE), None)


def test_a_link_from_another_site_keeps_the_reviewer_signed_in(
    gw: GatewayThread, new_page: PageFactory, other_site: str
) -> None:
    """Following a plain link from another site lands on the queue, still signed in."""
    gw.add_user("rita", Role.REVIEWER)
    page = new_page()
    login(page, gw.url, "rita")
    signed_in = _session_cookie(page)

    page.goto(other_site)
    page.click("#link")
    expect(page.locator("[data-testid=whoami]")).to_contain_text("rita")
    assert page.url == f"{gw.url}/ui/"
    assert _session_cookie(page) == signed_in
    page.goto(f"{gw.url}/ui/qa")
    expect(page.locator("[data-testid=whoami]")).to_contain_text("rita")


def test_a_form_from_another_site_does_not_sign_out(
    gw: GatewayThread, new_page: PageFactory, other_site: str
) -> None:
    """A cross-site POST to the sign-out address changes nothing: the session and cookie stay."""
    gw.add_user("rita", Role.REVIEWER)
    page = new_page()
    login(page, gw.url, "rita")
    signed_in = _session_cookie(page)

    page.goto(other_site)
    page.click("#send")
    page.wait_for_load_state()
    assert _session_cookie(page) == signed_in
    expect(page.locator("body")).to_contain_text("another site; nothing was changed")
    page.goto(f"{gw.url}/ui/")
    expect(page.locator("[data-testid=whoami]")).to_contain_text("rita")
