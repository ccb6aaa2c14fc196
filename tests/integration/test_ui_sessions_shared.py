"""Reviewer UI sessions kept in the store, over real HTTP: they survive a restart, carry over
between two PostgreSQL replicas, end everywhere on sign-out or expiry, and the database never
holds a session id a cookie could carry."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from gateway.app import Gateway
from gateway.config import Settings
from gateway.store import SQLiteStore, sqlite_path
from gateway.types import Role, SessionRecord
from reviewer_ui.sessions import COOKIE
from tests.integration.replicas import replicas
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "replicas"]

PASSWORD = "correct horse battery"


def _url(gw: Gateway, path: str) -> str:
    return f"http://127.0.0.1:{gw.http_port}/ui{path}"


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return match[1]


async def _sign_in(web: httpx.AsyncClient, gw: Gateway, name: str) -> None:
    """Through the login form, as a browser does."""
    form = await web.get(_url(gw, "/login"))
    resp = await web.post(
        _url(gw, "/login"), data={"csrf": _csrf(form), "name": name, "password": PASSWORD}
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/ui/", resp.text


async def _signed_in_as(web: httpx.AsyncClient, gw: Gateway) -> str | None:
    """The account the queue page greets, or None when it sends us to sign in."""
    resp = await web.get(_url(gw, "/"))
    if resp.status_code == 303:
        assert resp.headers["location"] == "/ui/login"
        return None
    assert resp.status_code == 200, resp.text
    match = re.search(r"(\w+) \((reviewer|senior|auditor|admin)\)", resp.text)
    assert match is not None
    return match[1]


def _sid(web: httpx.AsyncClient) -> str:
    """The session id inside the signed cookie (``id.signature``)."""
    return web.cookies[COOKIE].rsplit(".", 1)[0]


async def test_a_session_survives_a_gateway_restart(settings: Settings) -> None:
    """Signed in before a restart on the same SQLite file, still signed in after it."""
    async with httpx.AsyncClient(timeout=10) as web:
        first = Gateway(settings)
        await first.start()
        try:
            await first.accounts.create("ann", Role.REVIEWER, PASSWORD, None)
            await _sign_in(web, first, "ann")
            assert await _signed_in_as(web, first) == "ann"
        finally:
            await first.stop()
        second = Gateway(settings)
        await second.start()
        try:
            assert await _signed_in_as(web, second) == "ann"
        finally:
            await second.stop()


async def test_the_session_purger_deletes_expired_sessions_nobody_came_back_to(
    settings: Settings,
) -> None:
    """A row past its expiry is deleted by the periodic purge; a live one is kept."""
    path = sqlite_path(settings.store_url)
    now = datetime.now(UTC)
    stale = SessionRecord("a" * 64, "ann", "t", False, now, now, now - timedelta(seconds=1))
    live = SessionRecord("b" * 64, "bob", "t", False, now, now, now + timedelta(minutes=30))
    async with SQLiteStore(path) as store:
        await store.put_session(stale)
        await store.put_session(live)
    gw = Gateway(settings)
    await gw.start()
    try:
        found: SessionRecord | None = stale
        async with asyncio.timeout(10):
            while found is not None:
                await asyncio.sleep(0.05)
                found = await gw.store.get_session(stale.id_hash)  # type: ignore[attr-defined]
        assert await gw.store.get_session(live.id_hash) == live  # type: ignore[attr-defined]
    finally:
        await gw.stop()


async def test_signed_in_on_a_works_on_b_and_signing_out_on_b_ends_it_on_a(
    replicas: tuple[Gateway, Gateway],
) -> None:
    """One cookie, two replicas: the session and its flash messages follow the reviewer."""
    a, b = replicas
    await a.accounts.create("ann", Role.ADMIN, PASSWORD, None)
    async with httpx.AsyncClient(timeout=10) as web:
        await _sign_in(web, a, "ann")
        assert await _signed_in_as(web, b) == "ann"
        # A form shown by B, posted to A, its result shown by B.
        page = await web.get(_url(b, "/admin/switches"))
        form = {"csrf": _csrf(page), "kind": "application", "name": "t-echo", "action": "pause"}
        resp = await web.post(_url(a, "/admin/switches"), data={**form, "reason": "drift"})
        assert resp.status_code == 303
        shown = await web.get(_url(b, "/admin/switches"))
        assert "application t-echo paused" in shown.text
        stolen = httpx.Cookies({COOKIE: web.cookies[COOKIE]})
        resp = await web.post(_url(b, "/logout"), data={"csrf": _csrf(shown)})
        assert resp.status_code == 303
    async with httpx.AsyncClient(timeout=10, cookies=stolen) as replay:
        assert await _signed_in_as(replay, a) is None
        assert await _signed_in_as(replay, b) is None


async def test_an_expired_session_is_refused_and_its_row_deleted(
    replicas: tuple[Gateway, Gateway], pg_dsn: str
) -> None:
    """A session idle past the limit is refused on either replica and leaves no row."""
    a, b = replicas
    await a.accounts.create("ann", Role.REVIEWER, PASSWORD, None)
    async with httpx.AsyncClient(timeout=10) as web:
        await _sign_in(web, a, "ann")
        key = hashlib.sha256(_sid(web).encode()).hexdigest()
        conn = await asyncpg.connect(pg_dsn)
        try:
            long_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            await conn.execute(
                "UPDATE ui_sessions SET last_seen = $1 WHERE id_hash = $2", long_ago, key
            )
            assert await _signed_in_as(web, b) is None
            assert await conn.fetchval("SELECT count(*) FROM ui_sessions") == 0
            assert await _signed_in_as(web, a) is None
        finally:
            await conn.close()


async def test_the_database_holds_no_session_id(
    replicas: tuple[Gateway, Gateway], pg_dsn: str
) -> None:
    """Rows are keyed by the id's SHA-256; no column holds the id the cookie carries."""
    a, _ = replicas
    await a.accounts.create("ann", Role.REVIEWER, PASSWORD, None)
    async with httpx.AsyncClient(timeout=10) as web:
        await _sign_in(web, a, "ann")
        sid = _sid(web)
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch("SELECT * FROM ui_sessions")
    finally:
        await conn.close()
    assert [(r["id_hash"], r["account"]) for r in rows] == [
        (hashlib.sha256(sid.encode()).hexdigest(), "ann")
    ]
    assert not any(sid in str(value) for row in rows for value in row.values())
