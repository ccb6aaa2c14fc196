"""Reviewer UI sessions: signed cookies, idle and absolute expiry, renewal, CSRF tokens."""

from __future__ import annotations

import stat
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from itsdangerous import Signer
from starlette.requests import Request
from starlette.responses import Response

from reviewer_ui.sessions import (
    ABSOLUTE_LIFETIME,
    COOKIE,
    Session,
    Sessions,
    csrf_ok,
    load_secret,
)

SECRET = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _request(cookie: str | None) -> Request:
    headers = [] if cookie is None else [(b"cookie", f"{COOKIE}={cookie}".encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def _cookie(sessions: Sessions, session: Session, *, secure: bool = False) -> tuple[str, str]:
    response = Response()
    sessions.set_cookie(response, session, secure=secure)
    header = response.headers["set-cookie"]
    return SimpleCookie(header)[COOKIE].value, header


def _signed_in(idle: float = 60.0) -> tuple[Sessions, Clock, Session, str]:
    clock = Clock()
    sessions = Sessions(SECRET, idle=idle, clock=clock)
    session = sessions.sign_in(None, "ann")
    value, _ = _cookie(sessions, session)
    return sessions, clock, session, value


def test_cookie_round_trips_to_the_same_session() -> None:
    """The signed cookie of a session finds that session again."""
    sessions, _, session, value = _signed_in()
    assert sessions.get(_request(value)) is session


def test_cookie_attributes_keep_it_from_scripts_and_other_sites() -> None:
    """HttpOnly and SameSite=Strict always; Secure only when served over TLS."""
    sessions, _, session, _ = _signed_in()
    _, plain = _cookie(sessions, session)
    _, tls = _cookie(sessions, session, secure=True)
    assert "HttpOnly" in plain and "SameSite=strict" in plain and "Secure" not in plain
    assert "Secure" in tls


@pytest.mark.parametrize("mangle", ["unsigned", "tampered", "other_key", "empty", "garbage"])
def test_forged_cookies_find_no_session(mangle: str) -> None:
    """A cookie that is not signed by this server's key is refused before any lookup."""
    sessions, _, session, value = _signed_in()
    forged = {
        "unsigned": session.sid,
        "tampered": value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
        "other_key": Signer(b"x" * 32, salt="hitl-ui-session").sign(session.sid).decode(),
        "empty": "",
        "garbage": "\xff.\x00",
    }[mangle]
    assert sessions.get(_request(forged)) is None
    assert sessions.get(_request(None)) is None


def test_idle_session_expires_and_stays_gone() -> None:
    """After `idle` seconds without a request the session ends, for good."""
    sessions, clock, _, value = _signed_in(idle=60)
    clock.now += 61
    assert sessions.get(_request(value)) is None
    clock.now -= 61  # even if the clock went back, the state was dropped
    assert sessions.get(_request(value)) is None


def test_activity_renews_the_idle_timer() -> None:
    """Requests within the idle time keep the session alive past a single idle span."""
    sessions, clock, session, value = _signed_in(idle=60)
    for _ in range(5):
        clock.now += 50
        assert sessions.get(_request(value)) is session


def test_absolute_lifetime_ends_even_an_active_session() -> None:
    """However active, a signed-in session ends `ABSOLUTE_LIFETIME` after sign-in."""
    sessions, clock, _, value = _signed_in(idle=3600)
    while clock.now + 1800 < 1000.0 + ABSOLUTE_LIFETIME:
        clock.now += 1800
        assert sessions.get(_request(value)) is not None
    clock.now = 1000.0 + ABSOLUTE_LIFETIME + 1
    assert sessions.get(_request(value)) is None


def test_sign_in_replaces_the_id_and_csrf_token() -> None:
    """Signing in gives a new id and token; the pre-login cookie no longer works."""
    sessions = Sessions(SECRET, clock=Clock())
    anonymous, created = sessions.get_or_create(_request(None))
    assert created and anonymous.user is None
    before, _ = _cookie(sessions, anonymous)
    signed = sessions.sign_in(anonymous, "ann")
    assert (signed.sid, signed.csrf) != (anonymous.sid, anonymous.csrf)
    assert signed.user == "ann" and not signed.sso
    assert sessions.get(_request(before)) is None


def test_end_signs_out() -> None:
    """An ended session's cookie finds nothing."""
    sessions, _, session, value = _signed_in()
    sessions.end(session)
    assert sessions.get(_request(value)) is None


def test_oldest_sessions_are_dropped_beyond_the_bound() -> None:
    """Memory stays bounded: the least recently used session goes first."""
    sessions = Sessions(SECRET, max_sessions=2, clock=Clock())
    first, second = sessions.sign_in(None, "a"), sessions.sign_in(None, "b")
    first_cookie, _ = _cookie(sessions, first)
    second_cookie, _ = _cookie(sessions, second)
    assert sessions.get(_request(first_cookie)) is first  # now the most recent
    sessions.sign_in(None, "c")
    assert sessions.get(_request(second_cookie)) is None
    assert sessions.get(_request(first_cookie)) is first


def test_csrf_token_must_match_exactly() -> None:
    """Only the session's own token passes; missing, wrong or non-text tokens fail."""
    _, _, session, _ = _signed_in()
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
