"""API keys for business applications.

A key looks like ``hitl_<key id>_<secret>``. Only a SHA-256 of the secret is stored: the secret is
256 random bits, so a slow password hash would add latency to every call without adding safety
(argon2 is for the low-entropy passwords of people, see the reviewer accounts).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.core.ratelimit import RateLimiter
from gateway.core.shared_limits import SharedRateLimiter
from gateway.core.slots import CallSlots
from gateway.errors import PermissionDenied, Unauthenticated
from gateway.store.protocol import Store
from gateway.types import ApiKey

_PREFIX = "hitl_"

KEY_ROLES = ("app", "auditor", "admin")
"""Roles a key can have: ``app`` decides for its applications; the others read the audit trail,
and ``admin`` also erases a data subject's records (AdminService)."""
APP_ROLES = frozenset({"app"})
"""Roles that may decide and read decisions (DecisionGateway, the inference service)."""
AUDIT_ROLES = frozenset({"auditor", "admin"})
ADMIN_ROLES = frozenset({"admin"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated business application key."""

    key_id: str
    applications: frozenset[str]
    role: str = "app"

    @property
    def actor(self) -> str:
        return f"app:{self.key_id}"

    def require_application(self, application: str) -> None:
        # The role counts too: a record from before roles and applications were checked
        # together may name applications on an auditor or admin key.
        if self.role not in APP_ROLES or application not in self.applications:
            raise PermissionDenied(f"key {self.key_id} may not act for application {application!r}")

    def require_role(self, allowed: frozenset[str]) -> None:
        """Raise PermissionDenied unless this key's role is one of ``allowed``."""
        if self.role not in allowed:
            raise PermissionDenied(
                f"key {self.key_id} has role {self.role!r}, which may not act here; this needs "
                f"one of {', '.join(sorted(allowed))}"
            )


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_role(role: str, applications: tuple[str, ...]) -> None:
    """Raise ValueError unless ``role`` is a key role that fits ``applications``.

    Only ``app`` keys act for applications; ``auditor`` and ``admin`` keys take none, so that
    no key both reads the whole audit trail and decides.
    """
    if role not in KEY_ROLES:
        raise ValueError(f"role must be one of {', '.join(KEY_ROLES)}, not {role!r}")
    if role not in APP_ROLES and applications:
        raise ValueError(
            f"a {role} key takes no applications: it reads the audit trail and never decides"
        )


def new_key(applications: tuple[str, ...], role: str = "app") -> tuple[str, ApiKey]:
    """Create a key; returns the token (shown once) and the record to store.

    Raises:
        ValueError: ``role`` is not one of `KEY_ROLES` or does not fit ``applications``
            (see `check_role`).
    """
    check_role(role, applications)
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record = ApiKey(
        key_id=key_id,
        secret_hash=_hash(secret),
        applications=applications,
        created_at=datetime.now(UTC),
        role=role,
    )
    return f"{_PREFIX}{key_id}_{secret}", record


CERT_PREFIX = "cn:"
"""Key id prefix of records that identify a client certificate's common name (mutual TLS)."""


def certificate_identity(
    common_name: str, applications: tuple[str, ...], role: str = "app"
) -> ApiKey:
    """A record that lets the client certificate with ``common_name`` act like an API key.

    It has no secret: a bearer token can never match it, only a verified certificate can.

    Raises:
        ValueError: a bad common name, or a role that does not fit ``applications``.
    """
    check_role(role, applications)
    if not common_name or len(common_name) > 128:
        raise ValueError("common name must be 1 to 128 characters")
    return ApiKey(
        key_id=f"{CERT_PREFIX}{common_name}",
        secret_hash="",
        applications=applications,
        created_at=datetime.now(UTC),
        role=role,
    )


def parse_bearer(header: str | None) -> tuple[str, str]:
    """Split ``Bearer hitl_<id>_<secret>`` into (key id, secret) or raise Unauthenticated."""
    if not header:
        raise Unauthenticated("missing authorization metadata (expected 'Bearer <key>')")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(_PREFIX):
        raise Unauthenticated("authorization must be 'Bearer hitl_…'")
    key_id, sep, secret = token[len(_PREFIX) :].partition("_")
    if not sep or not key_id or not secret or len(token) > 200:
        raise Unauthenticated("malformed API key")
    return key_id, secret


class KeyAuthenticator:
    """Verifies bearer keys against the store, caching good ones briefly.

    The cache keeps the store off the hot path; ``ttl`` bounds how long a revoked key keeps
    working on this replica. ``slots`` bounds the calls each key, and all keys together, have in
    progress; the call handlers hold them (see `gateway.core.slots`).
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl: float = 30.0,
        max_entries: int = 10_000,
        limiter: RateLimiter | SharedRateLimiter | None = None,
        slots: CallSlots | None = None,
    ) -> None:
        self._store = store
        self._limiter = limiter
        self.slots = slots or CallSlots()
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def admit(self, header: str | None, common_name: str | None = None) -> Principal:
        """Authenticate a call (bearer key, else a verified client certificate) and take one
        unit of the caller's rate limit.

        Raises:
            Unauthenticated: no valid credentials.
            RateLimited: the caller is over its rate.
        """
        if header is None and common_name is not None:
            principal = await self.authenticate_certificate(common_name)
        else:
            principal = await self.authenticate(header)
        if self._limiter is not None:
            self._limiter.acquire(principal.key_id)
        return principal

    async def authenticate_certificate(self, common_name: str) -> Principal:
        """The principal registered for a verified client certificate's common name."""
        key_id = f"{CERT_PREFIX}{common_name}"
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        record = await self._store.get_api_key(key_id)
        if record is None or record.revoked:
            raise Unauthenticated(f"client certificate {common_name!r} is not registered")
        principal = Principal(
            key_id=key_id, applications=frozenset(record.applications), role=record.role
        )
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[key_id] = (principal, now + self._ttl)
        return principal

    async def authenticate(self, header: str | None) -> Principal:
        now = time.monotonic()
        if header is not None:
            hit = self._cache.get(header)
            if hit is not None and hit[1] > now:
                return hit[0]
        key_id, secret = parse_bearer(header)
        record = await self._store.get_api_key(key_id)
        if (
            record is None
            or record.revoked
            or not hmac.compare_digest(record.secret_hash, _hash(secret))
        ):
            raise Unauthenticated("unknown or revoked API key")
        principal = Principal(
            key_id=key_id, applications=frozenset(record.applications), role=record.role
        )
        if len(self._cache) >= self._max:
            self._cache.clear()
        assert header is not None
        self._cache[header] = (principal, now + self._ttl)
        return principal
