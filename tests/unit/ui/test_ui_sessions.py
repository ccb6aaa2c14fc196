"""Reviewer UI sessions on a real SQLite store: signed cookies, idle and absolute expiry,
renewal, sign-out, CSRF tokens, flash messages, and what the database holds."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from itsdangerous import Signer
from starlette.requests import Request
from starlette.responses import Response

from gateway.keys import load_secret
from gateway.store import SQLiteStore
from reviewer_ui.sessions import (
    ABSOLUTE_LIFETIME,
    COOKIE,
    FLASH_COOKIE,
    Session,
    Sessions,
    csrf_ok,
    id_hash,
)

SECRET = b"k" * 32
START = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "gateway.db")
    await s.start()
    yield s
    await s.stop()


def _rows(store: SQLiteStore) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute("SELECT * FROM ui_sessions").fetchall()
    finally:
        conn.close()


def _request(cookie: str | None, flash: str | None = None) -> Request:
    jar = [] if cookie is None else [f"{COOKIE}={cookie}"]
    if flash is not None:
        jar.append(f"{FLASH_COOKIE}={flash}")
    headers = [(b"cookie", "; ".join(jar).encode())] if jar else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def _cookies(sessions: Sessions, session: Session, *, secure: bool = False) -> dict[str, str]:
    """Each cookie the response sets (name to the raw Set-Cookie header)."""
    response = Response()
    sessions.set_cookie(response, session, secure=secure)
    headers = response.headers.getlist("set-cookie")
    return {h.split("=", 1)[0]: h for h in headers}


def _value(sessions: Sessions, session: Session, name: str = COOKIE) -> str:
    return SimpleCookie(_cookies(sessions, session)[name])[name].value


async def _signed_in(
    store: SQLiteStore, idle: float = 60.0
) -> tuple[Sessions, Clock, Session, str]:
    clock = Clock()
    sessions = Sessions(SECRET, store=store, idle=idle, clock=clock)
    session = await sessions.sign_in(None, "ann")
    return sessions, clock, session, _value(sessions, session)


async def test_cookie_round_trips_to_the_same_session(store: SQLiteStore) -> None:
    """The signed cookie of a session finds that session, its user and token, again."""
    sessions, _, session, value = await _signed_in(store)
    found = await sessions.get(_request(value))
    assert found is not None
    assert (found.sid, found.user, found.csrf, found.sso) == (
        session.sid,
        "ann",
        session.csrf,
        False,
    )


async def test_a_new_sessions_object_on_the_same_store_knows_the_session(
    store: SQLiteStore,
) -> None:
    """The state is in the store, not in the object: another instance (replica) finds it."""
    _, clock, session, value = await _signed_in(store)
    other = Sessions(SECRET, store=store, idle=60, clock=clock)
    found = await other.get(_request(value))
    assert found is not None and found.user == "ann" and found.csrf == session.csrf


async def test_the_database_holds_a_hash_of_the_id_never_the_id(store: SQLiteStore) -> None:
    """Someone reading the table finds SHA-256 digests, not ids a cookie could carry."""
    _, _, session, _ = await _signed_in(store)
    rows = _rows(store)
    assert len(rows) == 1 and rows[0][0] == id_hash(session.sid) and rows[0][1] == "ann"
    await store.stop()
    assert session.sid.encode() not in store.path.read_bytes()
    wal = store.path.with_name(store.path.name + "-wal")
    assert not wal.exists() or session.sid.encode() not in wal.read_bytes()


async def test_cookie_attributes_keep_it_from_scripts_and_other_sites(store: SQLiteStore) -> None:
    """HttpOnly and SameSite=Strict always; Secure only when served over TLS."""
    sessions, _, session, _ = await _signed_in(store)
    plain = _cookies(sessions, session)[COOKIE]
    tls = _cookies(sessions, session, secure=True)[COOKIE]
    assert "HttpOnly" in plain and "SameSite=strict" in plain and "Secure" not in plain
    assert "Secure" in tls


@pytest.mark.parametrize("mangle", ["unsigned", "tampered", "other_key", "empty", "garbage"])
async def test_forged_cookies_find_no_session(store: SQLiteStore, mangle: str) -> None:
    """A cookie that is not signed by this server's key is refused before any lookup."""
    sessions, _, session, value = await _signed_in(store)
    forged = {
        "unsigned": session.sid,
        "tampered": value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
        "other_key": Signer(b"x" * 32, salt="hitl-ui-session").sign(session.sid).decode(),
        "empty": "",
        "garbage": "\xff.\x00",
    }[mangle]
    assert await sessions.get(_request(forged)) is None
    assert await sessions.get(_request(None)) is None


async def test_idle_session_expires_its_row_goes_and_it_stays_gone(store: SQLiteStore) -> None:
    """After `idle` seconds without a request the session ends and its row is deleted."""
    sessions, clock, _, value = await _signed_in(store, idle=60)
    clock.now += 61
    assert await sessions.get(_request(value)) is None
    assert _rows(store) == []
    clock.now -= 61  # even if the clock went back, the state was dropped
    assert await sessions.get(_request(value)) is None


async def test_activity_renews_the_idle_timer(store: SQLiteStore) -> None:
    """Requests within the idle time keep the session alive past a single idle span."""
    sessions, clock, session, value = await _signed_in(store, idle=60)
    for _ in range(5):
        clock.now += 50
        found = await sessions.get(_request(value))
        assert found is not None and found.sid == session.sid


async def test_last_seen_is_written_only_when_it_moved_enough(store: SQLiteStore) -> None:
    """Page views closer together than the touch interval cost no write."""
    sessions, clock, _, value = await _signed_in(store, idle=1800)
    written = store.stats.jobs
    for _ in range(5):
        clock.now += 10
        assert await sessions.get(_request(value)) is not None
    assert store.stats.jobs == written
    clock.now += 15  # 65 s after the last write
    assert await sessions.get(_request(value)) is not None
    assert store.stats.jobs == written + 1
    (row,) = _rows(store)
    assert row[5] == "2023-11-14T22:14:25.000000Z"  # START + 65 s


async def test_absolute_lifetime_ends_even_an_active_session(store: SQLiteStore) -> None:
    """However active, a signed-in session ends `ABSOLUTE_LIFETIME` after sign-in."""
    sessions, clock, _, value = await _signed_in(store, idle=3600)
    while clock.now + 1800 < START + ABSOLUTE_LIFETIME:
        clock.now += 1800
        assert await sessions.get(_request(value)) is not None
    clock.now = START + ABSOLUTE_LIFETIME + 1
    assert await sessions.get(_request(value)) is None
    assert _rows(store) == []


async def test_visitors_who_have_not_signed_in_cost_no_row(store: SQLiteStore) -> None:
    """The sign-in page's session is in its cookie: same id and token back, nothing stored."""
    clock = Clock()
    sessions = Sessions(SECRET, store=store, idle=60, clock=clock)
    anonymous, created = await sessions.get_or_create(_request(None))
    assert created and anonymous.user is None
    value = _value(sessions, anonymous)
    again, created = await sessions.get_or_create(_request(value))
    assert not created and (again.sid, again.csrf) == (anonymous.sid, anonymous.csrf)
    assert _rows(store) == [] and store.stats.jobs == 0
    clock.now += 61  # an idle sign-in form expires like a session
    assert await sessions.get(_request(value)) is None


async def test_sign_in_replaces_the_id_and_csrf_token(store: SQLiteStore) -> None:
    """Signing in gives a new id and token; the pre-login cookie signs nobody in."""
    sessions = Sessions(SECRET, store=store, clock=Clock())
    anonymous, _ = await sessions.get_or_create(_request(None))
    before = _value(sessions, anonymous)
    signed = await sessions.sign_in(anonymous, "ann")
    assert (signed.sid, signed.csrf) != (anonymous.sid, anonymous.csrf)
    assert signed.user == "ann" and not signed.sso
    still = await sessions.get(_request(before))
    assert still is not None and still.user is None


async def test_signing_in_again_deletes_the_replaced_session(store: SQLiteStore) -> None:
    """A second sign-in over a live session leaves one row, and the old cookie is dead."""
    sessions, _, first, value = await _signed_in(store)
    second = await sessions.sign_in(first, "bob", sso=True)
    assert await sessions.get(_request(value)) is None
    assert [(r[0], r[1], r[3]) for r in _rows(store)] == [(id_hash(second.sid), "bob", 1)]


async def test_end_signs_out(store: SQLiteStore) -> None:
    """An ended session's cookie finds nothing, and its row is gone."""
    sessions, _, session, value = await _signed_in(store)
    await sessions.end(session)
    assert await sessions.get(_request(value)) is None
    assert _rows(store) == []


async def test_flash_messages_reach_the_next_page_of_that_session_only(
    store: SQLiteStore,
) -> None:
    """A message set before a redirect is shown by the next request, then cleared."""
    sessions, clock, session, value = await _signed_in(store, idle=1800)
    session.flash.append(("ok", "Decision d-1 is now APPROVED."))
    flash = _value(sessions, session, FLASH_COOKIE)
    shown = await sessions.get(_request(value, flash))
    assert shown is not None and shown.flash == [("ok", "Decision d-1 is now APPROVED.")]
    shown.flash = []  # rendered
    assert 'hitl_flash=""' in _cookies(sessions, shown)[FLASH_COOKIE]  # deleted
    other = await sessions.sign_in(None, "eve")
    seen = await sessions.get(_request(_value(sessions, other), flash))
    assert seen is not None and seen.flash == []
    clock.now += 61  # a message nobody picked up within a minute is dropped
    late = await sessions.get(_request(value, flash))
    assert late is not None and late.flash == []


async def test_csrf_token_must_match_exactly(store: SQLiteStore) -> None:
    """Only the session's own token passes; missing, wrong or non-text tokens fail."""
    _, _, session, _ = await _signed_in(store)
    assert csrf_ok(session, session.csrf)
    for token in (None, "", session.csrf + "x", session.csrf[:-1], 42):
        assert not csrf_ok(session, token)
    assert not csrf_ok(None, session.csrf)


def test_secret_is_created_private_once_and_reused(tmp_path: Path) -> None:
    """The signing key is made with mode 0600 on first start and read back afterwards."""
    key = load_secret(tmp_path / "var")
    assert len(key) == 32
    assert stat.S_IMODE((tmp_path / "var" / "ui-session.key").stat().st_mode) == 0o600
    assert load_secret(tmp_path / "var") == key
