"""Requests without the session cookie because another site started them change no cookie.

Real Chromium drives the same paths in ``tests/browser/test_cross_site.py``; these requests
stand for browsers that send no ``Sec-Fetch-Site`` (only the Lax companion cookie tells) and
check the exact answers.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.app import Gateway
from gateway.types import Role
from reviewer_ui.sessions import COOKIE, SIGNED_IN_COOKIE

PASSWORD = "correct horse battery"


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return match[1]


@pytest.fixture
async def web(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A reviewer signed in through the login form, as a browser does."""
    await gateway.accounts.create("rita", Role.REVIEWER, PASSWORD)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as web:
        form = {"csrf": _csrf(await web.get("/ui/login")), "name": "rita", "password": PASSWORD}
        assert (await web.post("/ui/login", data=form)).status_code == 303
        yield web


def _set_cookies(resp: httpx.Response) -> dict[str, str]:
    """Each cookie the answer sets or deletes, with its attributes."""
    headers = resp.headers.get_list("set-cookie")
    return {h.split("=", 1)[0]: h for h in headers}


async def test_a_link_carrying_only_the_companion_cookie_gets_a_same_site_reload(
    web: httpx.AsyncClient,
) -> None:
    """With only the Lax companion cookie a page load gets a same-site reload and no cookie."""
    only_lax = {SIGNED_IN_COOKIE: "1"}
    async with httpx.AsyncClient(base_url=str(web.base_url), cookies=only_lax) as cut_off:
        resp = await cut_off.get("/ui/items/abc?kind=qa")
    assert resp.status_code == 200
    assert 'content="0; url=/ui/items/abc?kind=qa"' in resp.text
    cookies = _set_cookies(resp)
    assert COOKIE not in cookies
    assert "Max-Age=0" in cookies[SIGNED_IN_COOKIE]  # a second arrival cannot loop
    assert (await web.get("/ui/")).status_code == 200  # the session itself is untouched
    assert web.cookies.get(SIGNED_IN_COOKIE) == "1"  # as a signed-in browser holds it


async def test_a_sign_in_form_from_another_site_changes_no_cookie(gateway: Gateway) -> None:
    """A POST another site starts is refused before it could set a visitor cookie."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as web:
        resp = await web.post(
            "/ui/login",
            data={"name": "rita", "password": PASSWORD},
            headers={"sec-fetch-site": "cross-site"},
        )
    assert resp.status_code == 403
    assert _set_cookies(resp) == {}


async def test_signing_out_without_the_forms_token_changes_nothing(
    web: httpx.AsyncClient,
) -> None:
    """A sign-out POST with a wrong token changes no cookie and ends no session."""
    resp = await web.post("/ui/logout", data={"csrf": "forged"})
    assert resp.status_code == 303 and resp.headers["location"] == "/ui/"
    assert _set_cookies(resp) == {}
    assert (await web.get("/ui/")).status_code == 200
