"""Reviewer accounts: argon2 password hashes, sign-in with throttling, the first admin.

Passwords of people are low-entropy, so they get a slow, memory-hard hash (argon2id, via
argon2-cffi with its default parameters). Hashing and verifying run in a worker thread so a
sign-in never stalls the event loop that also serves gRPC.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.errors import InvalidInput, RateLimited, Unauthenticated
from gateway.store.protocol import ReviewStore
from gateway.types import Account, AuditDraft, Role

log = structlog.get_logger("gateway.accounts")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Same shape as group names in policies, so a group never holds a quote (see the queue SQL)."""
MIN_PASSWORD = 12
MAX_PASSWORD = 1024

DEFAULT_GROUPS: dict[Role, tuple[str, ...]] = {
    Role.REVIEWER: ("reviewers",),
    Role.SENIOR: ("senior", "reviewers"),
    Role.AUDITOR: (),
    Role.ADMIN: (),
}
"""Groups an account gets when none are given: those of the shipped policies."""


class LoginThrottle:
    """At most ``attempts`` failed sign-ins per key (account name, client) in ``window`` s."""

    def __init__(
        self,
        attempts: int = 5,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self._attempts = attempts
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def check(self, *keys: str) -> None:
        """Raise `RateLimited` when any of ``keys`` has used up its attempts."""
        now = self._clock()
        for key in keys:
            times = self._failures.get(key)
            if not times:
                continue
            while times and times[0] <= now - self._window:
                times.popleft()
            if len(times) >= self._attempts:
                wait = times[0] + self._window - now
                raise RateLimited(
                    f"too many failed sign-ins; try again in {int(wait) + 1} s", retry_after=wait
                )

    def failed(self, *keys: str) -> None:
        if len(self._failures) >= self._max_keys:  # bound memory under a spray of names
            self._failures.clear()
        now = self._clock()
        for key in keys:
            self._failures.setdefault(key, deque(maxlen=self._attempts)).append(now)

    def succeeded(self, name_key: str) -> None:
        self._failures.pop(name_key, None)


def _validate(name: str, groups: tuple[str, ...], password: str) -> None:
    if not _NAME.match(name):
        raise InvalidInput(
            "name", "1-64 letters, digits or . _ @ -, starting with a letter or digit"
        )
    for i, group in enumerate(groups):
        if not _GROUP.match(group):
            raise InvalidInput(f"groups[{i}]", f"invalid group name {group!r}")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput("password", f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")


class AccountService:
    def __init__(
        self,
        store: ReviewStore,
        *,
        hasher: PasswordHasher | None = None,
        throttle: LoginThrottle | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._hasher = hasher or PasswordHasher()
        self._throttle = throttle or LoginThrottle()
        self._clock = clock
        # A hash to verify against when the name is unknown, so a wrong name takes as long
        # as a wrong password and does not reveal which accounts exist.
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    async def create(
        self,
        name: str,
        role: Role,
        password: str,
        groups: tuple[str, ...] | None = None,
        *,
        actor: str = "system",
    ) -> Account:
        """Create an account (audited). Raises InvalidInput, or Conflict when the name is taken."""
        groups = DEFAULT_GROUPS[role] if groups is None else tuple(dict.fromkeys(groups))
        _validate(name, groups, password)
        hashed = await asyncio.to_thread(self._hasher.hash, password)
        account = Account(name, role, groups, hashed, self._clock())
        event = AuditDraft(
            decision_id="",
            type="account.created",
            actor=actor,
            payload={"name": name, "role": role.value, "groups": list(groups)},
            ts=account.created_at,
        )
        await self._store.add_account(account, event)
        return account

    async def get(self, name: str) -> Account | None:
        return await self._store.get_account(name)

    async def authenticate(self, name: str, password: str, client: str) -> Account:
        """The account when ``password`` matches.

        Raises:
            RateLimited: Too many recent failures for this name or this client.
            Unauthenticated: Unknown name, wrong password or disabled account (one message).
        """
        name_key, client_key = f"name:{name}", f"client:{client}"
        self._throttle.check(name_key, client_key)
        account = await self._store.get_account(name) if _NAME.match(name) else None
        stored = account.password_hash if account is not None else self._dummy
        ok = await asyncio.to_thread(self._verify, stored, password[:MAX_PASSWORD])
        if account is None or not ok or account.disabled:
            self._throttle.failed(name_key, client_key)
            log.info("signin.failed", name=name[:64], client=client)
            raise Unauthenticated("wrong name or password")
        self._throttle.succeeded(name_key)
        return account

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def ensure_admin(self, password: str | None) -> str | None:
        """Create the account ``admin`` when no admin exists.

        Uses ``password`` when given (``HITL_ADMIN_PASSWORD``), otherwise a random one that is
        returned so the caller can print it once. Returns None when an admin already exists.
        """
        if any(a.role is Role.ADMIN for a in await self._store.list_accounts()):
            return None
        generated = password or secrets.token_urlsafe(18)
        await self.create("admin", Role.ADMIN, generated, actor="system")
        return None if password else generated
