"""Reviewer accounts: argon2 password hashes, sign-in with throttling, the first admin, and
what a role may do outside the review queue (whose rules live in `gateway.core.queue`).

Passwords of people are low-entropy, so they get a slow, memory-hard hash (argon2id, via
argon2-cffi with its default parameters). Hashing and verifying run in a worker thread so a
sign-in never stalls the event loop that also serves gRPC.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.core.auth import AUDIT_ROLES
from gateway.core.shared_limits import SharedLoginThrottle
from gateway.errors import (
    FailedPrecondition,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
)
from gateway.store.protocol import AccountChanges, ReviewStore
from gateway.types import Account, JSONObject, Role

log = structlog.get_logger("gateway.accounts")

MAX_NAME = 64
"""Longest account name; a longer one submitted to sign in is refused before it is kept."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""Same shape as group names in policies, so a group never holds a quote (see the queue SQL)."""
MIN_PASSWORD = 12
MAX_PASSWORD = 1024

DEFAULT_GROUPS: dict[Role, tuple[str, ...]] = {
    Role.REVIEWER: ("reviewers",),
    Role.SENIOR: ("senior", "reviewers"),
    Role.AUDITOR: (),
    Role.ADMIN: (),
    Role.MODEL_RISK: (),
}
"""Groups an account gets when none are given: those of the shipped policies."""


def require_switch_manager(account: Account) -> None:
    """Raise PermissionDenied unless ``account`` may pause and resume (admins only)."""
    if account.role is not Role.ADMIN:
        raise PermissionDenied("only admins manage the kill switch")


def require_outbox_manager(account: Account) -> None:
    """Raise PermissionDenied unless ``account`` may see and re-send notifications (admins)."""
    if account.role is not Role.ADMIN:
        raise PermissionDenied("only admins see and re-send notifications")


def require_trail_reader(account: Account) -> None:
    """Raise PermissionDenied unless ``account`` may read the audit trail.

    The same roles as an API key needs for the gRPC AuditService, so a person and a key with
    the same role see the same trail.
    """
    if account.role not in AUDIT_ROLES:
        raise PermissionDenied("only auditors and admins read the audit trail")


class LoginThrottle:
    """At most ``attempts`` password checks that did not succeed per key in ``window`` seconds.

    An attempt takes its place (`reserve`) before its password is checked and gives it back
    (`release`) only if it succeeds: attempts sent at once cannot all pass a check made before
    any of them had failed, so no more than ``attempts`` wrong passwords are ever tried in a
    window. Keys are kept as short digests, so the size of what a client submits never reaches
    the table; entries leave it once their window has passed, and the oldest are dropped first
    should ``max_keys`` ever be reached within one window.
    """

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
        self._taken: dict[bytes, list[float]] = {}
        """Per key digest, the times of its reservations still in the window, oldest first."""
        self._next_sweep = clock() + window

    def reserve(self, *keys: str) -> float:
        """Take one attempt of each of ``keys``; the returned stamp gives it back (`release`).

        Raises:
            RateLimited: A key has used up its attempts; nothing was taken.
        """
        now = self._clock()
        self._sweep(now)
        digests = [_digest(key) for key in keys]
        for digest in digests:
            times = self._live(digest, now)
            if len(times) >= self._attempts:
                wait = times[0] + self._window - now
                raise RateLimited(
                    f"too many failed sign-ins; try again in {int(wait) + 1} s", retry_after=wait
                )
        for digest in digests:
            if digest not in self._taken and len(self._taken) >= self._max_keys:
                del self._taken[next(iter(self._taken))]  # the oldest key: insertion order
            self._taken.setdefault(digest, []).append(now)
        return now

    def release(self, stamp: float, *keys: str) -> None:
        """Give back the attempt `reserve` took at ``stamp`` (its password was right)."""
        for key in keys:
            digest = _digest(key)
            times = self._taken.get(digest)
            if times is not None and stamp in times:
                times.remove(stamp)
                if not times:
                    del self._taken[digest]

    def __len__(self) -> int:
        """Keys in the table."""
        return len(self._taken)

    def _live(self, digest: bytes, now: float) -> list[float]:
        times = self._taken.get(digest, [])
        while times and times[0] <= now - self._window:
            times.pop(0)
        return times

    def _sweep(self, now: float) -> None:
        # Once a window, drop every key whose newest attempt has aged out, so keys used once
        # and never again do not stay: the walk is amortised over a window of sign-ins.
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._window
        cutoff = now - self._window
        for digest in [d for d, times in self._taken.items() if not times or times[-1] <= cutoff]:
            del self._taken[digest]


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


def _validate(name: str, groups: tuple[str, ...], password: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            "name", "1-64 letters, digits or . _ @ -, starting with a letter or digit"
        )
    _validate_groups(groups)
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput("password", f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")


def _validate_groups(groups: tuple[str, ...]) -> None:
    for i, group in enumerate(groups):
        if not _GROUP.fullmatch(group):
            raise InvalidInput(f"groups[{i}]", f"invalid group name {group!r}")


def removes_admin(before: Account, after: Account) -> bool:
    """Whether changing ``before`` into ``after`` takes away an enabled admin (disabling or
    demoting one): refused when it is the last, so someone can still run the kill switch."""
    was = before.role is Role.ADMIN and not before.disabled
    return was and (after.disabled or after.role is not Role.ADMIN)


@dataclass(frozen=True, slots=True)
class AccountChange:
    """The outcome of disabling, enabling, re-roling or re-grouping an account."""

    before: Account
    after: Account
    """The account as stored now (``before`` itself when nothing changed)."""
    changes: AccountChanges | None
    """What the change ended beside the row; None when it was already so (no event)."""

    @property
    def changed(self) -> bool:
        return self.changes is not None


class AccountService:
    def __init__(
        self,
        store: ReviewStore,
        *,
        hasher: PasswordHasher | None = None,
        throttle: LoginThrottle | SharedLoginThrottle | None = None,
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
        payload = {"name": name, "role": role.value, "groups": list(groups)}
        event = audit_event(EventType.ACCOUNT_CREATED, "", actor, payload, ts=account.created_at)
        await self._store.add_account(account, event)
        return account

    async def get(self, name: str) -> Account | None:
        return await self._store.get_account(name)

    async def all_accounts(self) -> list[Account]:
        """Every account, by name."""
        return await self._store.list_accounts()

    async def disable(self, name: str, *, actor: str) -> AccountChange:
        """Disable an account (audited): its UI sessions end and its review leases are released
        in the same transaction, so its next request is refused and others may claim at once.

        Raises:
            NotFound: No such account.
            FailedPrecondition: It is the last enabled admin.
            Conflict: It changed meanwhile.
        """
        return await self._change(name, actor, EventType.ACCOUNT_DISABLED, disabled=True)

    async def enable(self, name: str, *, actor: str) -> AccountChange:
        """Enable a disabled account again (audited); raises as `disable` does."""
        return await self._change(name, actor, EventType.ACCOUNT_ENABLED, disabled=False)

    async def set_role(self, name: str, role: Role, *, actor: str) -> AccountChange:
        """Give an account another role (audited), keeping its groups. An open session acts
        with the new role from its next request (the UI re-reads the account each time).

        Raises:
            NotFound: No such account.
            FailedPrecondition: It would demote the last enabled admin.
            Conflict: It changed meanwhile.
        """
        return await self._change(name, actor, EventType.ACCOUNT_ROLE_CHANGED, role=role)

    async def set_groups(self, name: str, groups: tuple[str, ...], *, actor: str) -> AccountChange:
        """Replace an account's review groups (audited), validated as `create` validates them.

        Raises:
            InvalidInput: A group name of the wrong shape.
            NotFound: No such account.
            Conflict: It changed meanwhile.
        """
        groups = tuple(dict.fromkeys(groups))
        _validate_groups(groups)
        return await self._change(name, actor, EventType.ACCOUNT_GROUPS_CHANGED, groups=groups)

    async def _change(
        self,
        name: str,
        actor: str,
        type: EventType,
        *,
        disabled: bool | None = None,
        role: Role | None = None,
        groups: tuple[str, ...] | None = None,
    ) -> AccountChange:
        before = await self._store.get_account(name)
        if before is None:
            raise NotFound("account", name)
        after = replace(
            before,
            disabled=before.disabled if disabled is None else disabled,
            role=before.role if role is None else role,
            groups=before.groups if groups is None else groups,
        )
        if after == before:
            return AccountChange(before, before, None)
        keep_admin = removes_admin(before, after)
        if keep_admin and not any(
            a.role is Role.ADMIN and not a.disabled and a.name != name
            for a in await self._store.list_accounts()
        ):
            raise FailedPrecondition(
                f"{name} is the last enabled admin: without one nobody can run "
                "the kill switch in the reviewer UI; enable or add another admin first"
            )
        event = audit_event(type, "", actor, _payload(type, before, after))
        # keep_admin: the store counts the other admins again inside its transaction, so two
        # changes at once (two admins disabling each other) cannot both pass the check above.
        changes = await self._store.change_account(before, after, event, keep_admin=keep_admin)
        log.info("account.changed", name=name, type=type.value, actor=actor)
        return AccountChange(before, after, changes)

    async def authenticate(self, name: str, password: str, client: str) -> Account:
        """The account when ``password`` matches.

        A name no account can have (wrong shape or longer than `MAX_NAME`) is refused at once,
        before anything of it is kept; every other attempt takes one of the throttle's places
        before its password is checked.

        Raises:
            RateLimited: Too many recent failures for this name or this client.
            Unauthenticated: Unknown name, wrong password or disabled account (one message).
        """
        if len(name) > MAX_NAME or not _NAME.fullmatch(name):
            log.info("signin.failed", name=name[:MAX_NAME], client=client, malformed=True)
            raise Unauthenticated("wrong name or password")
        keys = (f"name:{name}", f"client:{client}")
        stamp = self._throttle.reserve(*keys)
        try:
            account = await self._store.get_account(name)
        except BaseException:
            self._throttle.release(stamp, *keys)  # no password was checked
            raise
        stored = account.password_hash if account is not None else self._dummy
        # Once the check is under way it runs to the end even if this call is cancelled, so
        # from here on the place stays taken unless the password was right.
        ok = await asyncio.to_thread(self._verify, stored, password[:MAX_PASSWORD])
        if account is None or not ok or account.disabled:
            log.info("signin.failed", name=name, client=client)
            raise Unauthenticated("wrong name or password")
        self._throttle.release(stamp, *keys)
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


def _payload(type: EventType, before: Account, after: Account) -> JSONObject:
    """What an account change's event records: the account, and the old and new values."""
    payload: JSONObject = {"name": before.name}
    if type is EventType.ACCOUNT_ROLE_CHANGED:
        payload.update(old_role=before.role.value, new_role=after.role.value)
    elif type is EventType.ACCOUNT_GROUPS_CHANGED:
        payload.update(old_groups=list(before.groups), new_groups=list(after.groups))
    else:  # disabled or enabled: what the account could do, for the reader of the trail
        payload.update(disabled=after.disabled, role=after.role.value, groups=list(after.groups))
    return payload
