"""Signed session cookies, sessions kept in the store, and CSRF tokens.

The cookie carries only a random session id signed with the gateway's session key, so a forged
or altered cookie is refused before any lookup. A signed-in session's state (who, the CSRF
token, the SSO flag, sign-in time, last activity) is a row of the store keyed by the SHA-256 of
the id, so every replica behind a load balancer sees it, a restart signs nobody out, and someone
who reads the database still cannot present a session. Signing out or expiring deletes the row:
the session ends for good, which a self-contained cookie could not do.

A visitor who has not signed in costs no row and no write, so the public sign-in page cannot be
used to fill the table: their cookie is signed with a timestamp under its own salt (valid for
the idle time) and their CSRF token is an HMAC of the id. Flash messages (shown on the page
after a redirect) travel in a second signed cookie that lives a minute and is bound to the
session id: a message is written by one request and read by the next, so keeping it in the row
would add two writes to every form submission.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadData, BadSignature, Signer, TimestampSigner, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from gateway.store.protocol import SessionStore
from gateway.types import SessionRecord

COOKIE = "hitl_session"
FLASH_COOKIE = "hitl_flash"
SIGNED_IN_COOKIE = "hitl_signed_in"
"""A ``SameSite=Lax`` companion of a signed-in session cookie, holding nothing secret: it tells
a request from another site, which carries it but not the session cookie, that the browser
holds a session that must not be overwritten (see `reviewer_ui.crosssite`)."""
ABSOLUTE_LIFETIME = 12 * 3600.0
"""A session ends this many seconds after sign-in whatever the activity (a working day)."""
TOUCH_EVERY = 60.0
"""Most seconds a stored last activity may lag behind (a tenth of the idle time if shorter)."""
FLASH_LIFETIME = 60
"""Seconds a flash message waits for the next page."""
FLASH_TEXT_MAX = 300
"""Characters kept of one flash message, so the cookie stays far below browsers' 4 kB."""


@dataclass(slots=True)
class Session:
    sid: str
    csrf: str
    user: str | None = None
    """None for a visitor who has not signed in (such a session is never stored)."""
    sso: bool = False
    """Signed in by a trusted proxy's headers: valid only while the proxy keeps sending them."""
    signed_in_at: float = 0.0
    last_seen: float = 0.0
    """Last activity as stored (moved only when it advanced by `_touch_every` seconds)."""
    flash: list[tuple[str, str]] = field(default_factory=list)
    """Messages for the next page: ``(kind, text)``, kind ``ok`` or ``error``."""
    had_flash: bool = False
    """The request brought a flash cookie: the response clears it once the messages are shown."""


class _ClockSigner(TimestampSigner):
    """A timestamp signer on the sessions' clock (so tests can move time)."""

    def __init__(self, *args: Any, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


def id_hash(sid: str) -> str:
    """What the store keys a session by: the hex SHA-256 of its id, never the id itself."""
    return hashlib.sha256(sid.encode()).hexdigest()


class Sessions:
    """Sign-in sessions shared through the store by every replica (see the module docstring).

    Args:
        secret: The cookie signing key.
        store: Where signed-in sessions live.
        idle: Seconds without a request after which a session ends.
        clock: Wall-clock seconds (every replica must agree on it: rows carry times).
    """

    def __init__(
        self,
        secret: bytes,
        *,
        store: SessionStore,
        idle: float = 1800.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signer = Signer(secret, salt="hitl-ui-session")
        self._anonymous = _ClockSigner(secret, salt="hitl-ui-anonymous", clock=clock)
        self._flash = URLSafeTimedSerializer(
            secret, salt="hitl-ui-flash", signer=_ClockSigner, signer_kwargs={"clock": clock}
        )
        self._csrf_key = hmac.new(secret, b"hitl-ui-anonymous-csrf", hashlib.sha256).digest()
        self._store = store
        self._idle = idle
        # Writing last_seen on every request would make each page view a write; a session
        # therefore ends between idle - _touch_every and idle seconds after its last request.
        self._touch_every = min(TOUCH_EVERY, idle / 10)
        self._clock = clock

    # -- reading the cookie --------------------------------------------------------------------

    def _anonymous_session(self, sid: str) -> Session:
        csrf = hmac.new(self._csrf_key, sid.encode(), hashlib.sha256).hexdigest()
        return Session(sid, csrf)

    def _unsign(self, raw: str) -> tuple[str, bool] | None:
        """``(sid, signed_in)`` from a cookie value, or None when no key of ours signed it."""
        try:
            return self._signer.unsign(raw).decode(), True
        except (BadSignature, UnicodeDecodeError):
            pass
        try:
            return self._anonymous.unsign(raw, max_age=math.ceil(self._idle)).decode(), False
        except (BadSignature, UnicodeDecodeError):  # SignatureExpired is a BadSignature
            return None

    def _read_flash(self, request: Request, session: Session) -> Session:
        raw = request.cookies.get(FLASH_COOKIE)
        if raw is None:
            return session
        session.had_flash = True
        try:
            owner, messages = self._flash.loads(raw, max_age=FLASH_LIFETIME)
        except BadData:  # forged, from another key, or older than a minute
            return session
        if owner == id_hash(session.sid)[:16] and isinstance(messages, list):
            session.flash = [(str(m[0]), str(m[1])) for m in messages if len(m) == 2]
        return session

    async def _lookup(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        unsigned = self._unsign(raw) if raw else None
        if unsigned is None:
            return None
        sid, signed_in = unsigned
        if not signed_in:
            return self._read_flash(request, self._anonymous_session(sid))
        key = id_hash(sid)
        record = await self._store.get_session(key)
        if record is None:  # signed out, expired or purged: gone for good
            return None
        now = self._clock()
        last_seen, signed_in_at = record.last_seen.timestamp(), record.signed_in_at.timestamp()
        if now - last_seen > self._idle or now - signed_in_at > ABSOLUTE_LIFETIME:
            await self._store.delete_session(key)
            return None
        if now - last_seen >= self._touch_every:
            await self._store.touch_session(key, _at(now), self._expiry(now, signed_in_at))
            last_seen = now
        session = Session(
            sid,
            record.csrf,
            user=record.user,
            sso=record.sso,
            signed_in_at=signed_in_at,
            last_seen=last_seen,
        )
        return self._read_flash(request, session)

    def _expiry(self, last_seen: float, signed_in_at: float) -> datetime:
        return _at(min(last_seen + self._idle, signed_in_at + ABSOLUTE_LIFETIME))

    # -- the public interface ------------------------------------------------------------------

    async def get(self, request: Request) -> Session | None:
        """The live session of the request's cookie, or None (missing, forged or expired).

        A visitor who has not signed in gets a session with no user; nothing of it is stored.
        """
        return await self._lookup(request)

    async def get_or_create(self, request: Request) -> tuple[Session, bool]:
        session = await self._lookup(request)
        if session is not None:
            return session, False
        fresh = self._anonymous_session(secrets.token_urlsafe(32))
        fresh.had_flash = FLASH_COOKIE in request.cookies
        return fresh, True

    async def sign_in(self, old: Session | None, user: str, *, sso: bool = False) -> Session:
        """A fresh session for ``user``: a new id and CSRF token, so a planted id is useless."""
        now = self._clock()
        session = Session(
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
            user=user,
            sso=sso,
            signed_in_at=now,
            last_seen=now,
            had_flash=old is not None and old.had_flash,
        )
        record = SessionRecord(
            id_hash=id_hash(session.sid),
            user=user,
            csrf=session.csrf,
            sso=sso,
            signed_in_at=_at(now),
            last_seen=_at(now),
            expires_at=self._expiry(now, now),
        )
        replaces = id_hash(old.sid) if old is not None and old.user is not None else None
        await self._store.put_session(record, replaces=replaces)
        return session

    async def end(self, session: Session) -> None:
        """Sign out: the stored session is deleted, so its cookie finds nothing on any replica."""
        if session.user is not None:
            await self._store.delete_session(id_hash(session.sid))

    def set_cookie(self, response: Response, session: Session, *, secure: bool) -> None:
        """The session cookie, and the flash cookie carrying ``session.flash`` to the next page
        (or clearing it once its messages were shown)."""
        signer = self._signer if session.user is not None else self._anonymous
        _set(response, COOKIE, signer.sign(session.sid).decode(), secure=secure)
        if session.user is not None:
            response.set_cookie(
                SIGNED_IN_COOKIE, "1", httponly=True, samesite="lax", secure=secure, path="/"
            )
        if session.flash:
            messages = [[kind, text[:FLASH_TEXT_MAX]] for kind, text in session.flash[-5:]]
            value = self._flash.dumps([id_hash(session.sid)[:16], messages])
            _set(response, FLASH_COOKIE, str(value), secure=secure)
        elif session.had_flash:
            response.delete_cookie(FLASH_COOKIE, path="/", httponly=True, samesite="strict")

    @staticmethod
    def clear_cookie(response: Response) -> None:
        for name in (COOKIE, FLASH_COOKIE):
            response.delete_cookie(name, path="/", httponly=True, samesite="strict")
        response.delete_cookie(SIGNED_IN_COOKIE, path="/", httponly=True, samesite="lax")


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _set(response: Response, name: str, value: str, *, secure: bool) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=secure, path="/")


def csrf_ok(session: Session | None, token: object) -> bool:
    return (
        session is not None
        and isinstance(token, str)
        and hmac.compare_digest(session.csrf.encode(), token.encode())
    )
