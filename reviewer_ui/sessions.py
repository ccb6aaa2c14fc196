"""Signed session cookies, server-side session state, and CSRF tokens.

The cookie carries only a random session id signed with a key kept under the data directory
(created at first start, mode 0600), so a forged or altered cookie is refused before any
lookup. The state itself (who is signed in, the CSRF token, last activity) stays in memory:
signing out or expiring ends a session for good, which a self-contained cookie could not do.
A restart signs everyone out, which is acceptable for a reviewer console.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from itsdangerous import BadSignature, Signer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "hitl_session"
ABSOLUTE_LIFETIME = 12 * 3600.0
"""A session ends this many seconds after sign-in whatever the activity (a working day)."""


def load_secret(data_dir: Path) -> bytes:
    """The cookie signing key under ``data_dir``, created with 256 random bits when missing."""
    path = data_dir / "ui-session.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key


@dataclass(slots=True)
class Session:
    sid: str
    csrf: str
    user: str | None = None
    sso: bool = False
    """Signed in by a trusted proxy's headers: valid only while the proxy keeps sending them."""
    signed_in_at: float = 0.0
    last_seen: float = 0.0
    flash: list[tuple[str, str]] = field(default_factory=list)
    """Messages for the next page: ``(kind, text)``, kind ``ok`` or ``error``."""


class Sessions:
    def __init__(
        self,
        secret: bytes,
        *,
        idle: float = 1800.0,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._signer = Signer(secret, salt="hitl-ui-session")
        self._idle = idle
        self._max = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def _new(self) -> Session:
        while len(self._sessions) >= self._max:  # oldest first: bounded memory
            self._sessions.popitem(last=False)
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), last_seen=now)
        self._sessions[session.sid] = session
        return session

    def get(self, request: Request) -> Session | None:
        """The live session of the request's cookie, or None (missing, forged or expired)."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            sid = self._signer.unsign(raw).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = self._clock()
        expired = now - session.last_seen > self._idle or (
            session.user is not None and now - session.signed_in_at > ABSOLUTE_LIFETIME
        )
        if expired:
            del self._sessions[sid]
            return None
        session.last_seen = now
        self._sessions.move_to_end(sid)
        return session

    def get_or_create(self, request: Request) -> tuple[Session, bool]:
        session = self.get(request)
        return (session, False) if session is not None else (self._new(), True)

    def sign_in(self, old: Session | None, user: str, *, sso: bool = False) -> Session:
        """A fresh session for ``user``: a new id and CSRF token, so a planted id is useless."""
        if old is not None:
            self._sessions.pop(old.sid, None)
        session = self._new()
        session.user = user
        session.sso = sso
        session.signed_in_at = session.last_seen
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.sid, None)

    def set_cookie(self, response: Response, session: Session, *, secure: bool) -> None:
        response.set_cookie(
            COOKIE,
            self._signer.sign(session.sid).decode(),
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/",
        )

    @staticmethod
    def clear_cookie(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def csrf_ok(session: Session | None, token: object) -> bool:
    return (
        session is not None
        and isinstance(token, str)
        and hmac.compare_digest(session.csrf.encode(), token.encode())
    )
