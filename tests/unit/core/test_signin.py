"""The reviewer UI's sign-in rules on a real SQLite store: whose session may act, and when a
trusted proxy's assertion wins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from gateway.core.accounts import AccountService
from gateway.core.signin import NOBODY, SessionClaim, SignIn
from gateway.core.sso import SsoConfig, TrustedHeaderSso
from gateway.errors import PermissionDenied
from gateway.store import SQLiteStore
from gateway.types import Account, AuditDraft, Role

PROXY = "10.0.0.1"
ALICE = {"x-forwarded-user": "alice", "x-forwarded-groups": "senior, reviewers"}
PASSWORD = "correct horse battery"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "gateway.db")
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def accounts(store: SQLiteStore) -> AccountService:
    # The cheapest argon2 parameters: these tests are about rules, not hashing cost.
    return AccountService(store, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def _sso() -> TrustedHeaderSso:
    config = SsoConfig.parse(
        "X-Forwarded-User", "X-Forwarded-Groups", "senior=senior, reviewers=reviewer", "10.0.0.0/8"
    )
    return TrustedHeaderSso(config)


async def _add_disabled(store: SQLiteStore, name: str) -> None:
    now = datetime.now(UTC)
    account = Account(name, Role.REVIEWER, ("reviewers",), "", now, disabled=True)
    event = AuditDraft(decision_id="", type="account.created", actor="test", payload={}, ts=now)
    await store.add_account(account, event)


async def test_a_trusted_proxy_assertion_acts_whatever_the_session_says(
    accounts: AccountService,
) -> None:
    """The proxy's user acts (role from the groups), over a password session of someone else."""
    await accounts.create("bob", Role.REVIEWER, PASSWORD)
    acting = await SignIn(accounts, _sso()).acting(PROXY, ALICE, SessionClaim("bob"))
    assert acting.asserted and acting.account is not None
    assert (acting.account.name, acting.account.role) == ("alice", Role.SENIOR)


async def test_a_disabled_stored_account_blocks_the_proxys_assertion(
    store: SQLiteStore, accounts: AccountService
) -> None:
    """An account an admin disabled stays out even when the proxy vouches for it."""
    await _add_disabled(store, "alice")
    with pytest.raises(PermissionDenied, match="disabled"):
        await SignIn(accounts, _sso()).acting(PROXY, ALICE, None)


async def test_identity_headers_from_an_untrusted_peer_are_refused(
    accounts: AccountService,
) -> None:
    """Headers from outside the trusted proxies refuse the request, on the sign-in page too."""
    signin = SignIn(accounts, _sso())
    with pytest.raises(PermissionDenied, match="trusted proxy"):
        signin.asserted("192.168.0.1", ALICE)
    with pytest.raises(PermissionDenied, match="trusted proxy"):
        await signin.acting("192.168.0.1", ALICE, SessionClaim("alice", sso=True))


async def test_an_sso_session_acts_only_while_the_proxy_vouches(
    accounts: AccountService,
) -> None:
    """Without the proxy's headers an SSO session is nobody's, even for a stored account."""
    await accounts.create("alice", Role.SENIOR, PASSWORD)
    acting = await SignIn(accounts, _sso()).acting(PROXY, {}, SessionClaim("alice", sso=True))
    assert acting == NOBODY


async def test_a_password_session_acts_only_for_an_enabled_stored_account(
    store: SQLiteStore, accounts: AccountService
) -> None:
    """The session's account acts; an unknown or disabled one, or a visitor, is nobody."""
    created = await accounts.create("bob", Role.REVIEWER, PASSWORD)
    await _add_disabled(store, "carol")
    signin = SignIn(accounts)
    acting = await signin.acting(PROXY, {}, SessionClaim("bob"))
    assert acting.account == created and not acting.asserted
    assert await signin.acting(PROXY, {}, SessionClaim("carol")) == NOBODY
    assert await signin.acting(PROXY, {}, SessionClaim("nobody")) == NOBODY
    assert await signin.acting(PROXY, {}, SessionClaim(None)) == NOBODY
    assert await signin.acting(PROXY, {}, None) == NOBODY


async def test_without_sso_the_identity_headers_sign_nobody_in(accounts: AccountService) -> None:
    """Password sign-in only: the headers are ignored, from any peer."""
    signin = SignIn(accounts)
    assert signin.asserted("192.168.0.1", ALICE) is None
    assert await signin.acting(PROXY, ALICE, None) == NOBODY
    account = await accounts.create("dave", Role.REVIEWER, PASSWORD)
    assert await signin.password("dave", PASSWORD, "10.0.0.9") == account
