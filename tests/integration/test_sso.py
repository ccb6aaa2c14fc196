"""Trusted-header SSO over the real HTTP server: who is believed, who is refused, CSRF still on.

The gateway trusts only 127.0.0.1; a client bound to 127.0.0.2 (also loopback on Linux) plays
an untrusted machine sending the same headers.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import ConfigError, Settings, load_settings
from gateway.types import Account, AuditDraft, Role

ROLE_MAP = "hitl-admins=admin,senior=senior,reviewers=reviewer,hitl-audit=auditor"
SSO = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "senior, reviewers,Other Group"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(
        settings,
        sso_user_header="X-Forwarded-User",
        sso_role_map=ROLE_MAP,
        sso_trusted_proxies="127.0.0.1/32, 10.0.0.0/8",
    )


def _client(gw: Gateway, source: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gw.http_port}", transport=transport, timeout=10
    )


@pytest.fixture
async def proxy(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(gateway) as c:
        yield c


async def test_trusted_proxy_signs_the_user_in_with_role_and_groups(
    gateway: Gateway, proxy: httpx.AsyncClient, client: AsyncGatewayClient
) -> None:
    """The proxy's user header signs the person in; the role and groups come from the groups."""
    held = await client.decide("t-echo", {"score": 0.5, "vip": True})  # seniors' group only
    resp = await proxy.get("/ui/", headers=SSO)
    assert resp.status_code == 200
    assert "alice (senior)" in resp.text
    assert held.id in resp.text
    reviewer = {"X-Forwarded-User": "rob", "X-Forwarded-Groups": "reviewers"}
    resp = await proxy.get("/ui/", headers=reviewer)
    assert "rob (reviewer)" in resp.text and held.id not in resp.text
    page = await proxy.get("/ui/login", headers=SSO, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/ui/"
    assert await gateway.accounts.get("alice") is None  # nothing is written to the store


async def test_a_same_host_proxy_adding_x_forwarded_for_is_still_trusted(
    proxy: httpx.AsyncClient,
) -> None:
    """The trust check looks at the TCP peer, not at a forwarded client address."""
    headers = {**SSO, "X-Forwarded-For": "203.0.113.7"}
    resp = await proxy.get("/ui/", headers=headers)
    assert resp.status_code == 200 and "alice (senior)" in resp.text


async def test_headers_from_an_untrusted_address_are_refused(gateway: Gateway) -> None:
    """The same headers from a peer outside the trusted proxies get 403, also with a forged XFF."""
    async with _client(gateway, "127.0.0.2") as c:
        for headers in (SSO, {**SSO, "X-Forwarded-For": "127.0.0.1"}):
            resp = await c.get("/ui/", headers=headers)
            assert resp.status_code == 403
            assert "trusted proxy" in resp.text and "alice" not in resp.text
        resp = await c.post("/ui/login", headers=SSO, data={"name": "x", "password": "y"})
        assert resp.status_code == 403
        resp = await c.get("/ui/", follow_redirects=False)  # without the headers: sign-in page
        assert resp.status_code == 303 and resp.headers["location"] == "/ui/login"


async def test_user_without_a_mapped_group_is_refused(proxy: httpx.AsyncClient) -> None:
    """A person in no group of the role map is not signed in."""
    resp = await proxy.get("/ui/", headers={"X-Forwarded-User": "eve", "X-Forwarded-Groups": "x"})
    assert resp.status_code == 403 and "no group" in resp.text


async def test_bad_user_name_is_refused_naming_the_header(proxy: httpx.AsyncClient) -> None:
    """A user header that is not an account name is refused with the header named."""
    resp = await proxy.get(
        "/ui/", headers={"X-Forwarded-User": "<script>", "X-Forwarded-Groups": "senior"}
    )
    assert resp.status_code == 400
    assert "x-forwarded-user" in resp.text and "<script>" not in resp.text


async def test_post_needs_the_csrf_token_even_with_sso(
    gateway: Gateway, proxy: httpx.AsyncClient
) -> None:
    """The proxy's headers alone cannot change anything; with the page's token the admin can."""
    admin = {"X-Forwarded-User": "ops", "X-Forwarded-Groups": "hitl-admins"}
    form = {"kind": "application", "name": "t-echo", "action": "pause", "reason": "drift"}
    resp = await proxy.post("/ui/admin/switches", headers=admin, data=form)
    assert resp.status_code in (401, 403)
    assert not gateway.switches.is_paused("application", "t-echo")
    page = await proxy.get("/ui/admin/switches", headers=admin)
    assert page.status_code == 200 and "ops (admin)" in page.text
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None
    resp = await proxy.post(
        "/ui/admin/switches", headers=admin, data={**form, "csrf": match.group(1)}
    )
    assert resp.status_code == 303
    assert gateway.switches.is_paused("application", "t-echo")


async def test_sso_session_ends_when_the_proxy_stops_vouching(proxy: httpx.AsyncClient) -> None:
    """A cookie from an SSO sign-in is worthless without the proxy's headers."""
    assert (await proxy.get("/ui/", headers=SSO)).status_code == 200
    resp = await proxy.get("/ui/", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/ui/login"


async def test_disabled_stored_account_blocks_sso(
    gateway: Gateway, proxy: httpx.AsyncClient
) -> None:
    """An account an admin disabled stays out even when the proxy vouches for it."""
    now = datetime.now(UTC)
    account = Account("alice", Role.SENIOR, ("senior",), "", now, disabled=True)
    event = AuditDraft(decision_id="", type="account.created", actor="test", payload={}, ts=now)
    await gateway.store.add_account(account, event)  # type: ignore[attr-defined]
    resp = await proxy.get("/ui/", headers=SSO)
    assert resp.status_code == 403 and "disabled" in resp.text


async def test_sso_off_ignores_the_headers(settings: Settings) -> None:
    """Without SSO settings the user header signs nobody in, even from loopback."""
    off = replace(settings, sso_user_header="", sso_role_map="", sso_trusted_proxies="")
    gw = Gateway(off)
    await gw.start()
    try:
        async with _client(gw) as c:
            resp = await c.get("/ui/", headers=SSO, follow_redirects=False)
            assert resp.status_code == 303 and resp.headers["location"] == "/ui/login"
            resp = await c.get("/ui/login", headers=SSO)
            assert resp.status_code == 200 and 'name="password"' in resp.text
    finally:
        await gw.stop()


async def test_bad_sso_settings_are_refused_at_load() -> None:
    """SSO without proxies, a bad CIDR or an unknown role fails loading, naming the setting."""
    env = {"HITL_SSO_USER_HEADER": "X-User", "HITL_SSO_ROLE_MAP": "g=reviewer"}
    with pytest.raises(ConfigError, match="sso_trusted_proxies"):
        load_settings(environ=env)
    with pytest.raises(ConfigError, match="sso_trusted_proxies: 'nope'"):
        load_settings(environ={**env, "HITL_SSO_TRUSTED_PROXIES": "10.0.0.1,nope"})
    with pytest.raises(ConfigError, match="sso_role_map: 'g=boss'"):
        load_settings(
            environ={**env, "HITL_SSO_TRUSTED_PROXIES": "::1", "HITL_SSO_ROLE_MAP": "g=boss"}
        )
    ok = load_settings(environ={**env, "HITL_SSO_TRUSTED_PROXIES": "::1"})
    assert ok.sso_user_header == "X-User"
