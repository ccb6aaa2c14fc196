"""Disabling, enabling, re-roling and re-grouping accounts (`AccountService`) on a real SQLite
store: the rules, the audit events, and what an open session may do on its next request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from gateway.core.accounts import AccountService
from gateway.core.signin import NOBODY, SessionClaim, SignIn
from gateway.errors import FailedPrecondition, InvalidInput, NotFound, Unauthenticated
from gateway.store import SQLiteStore
from gateway.types import AuditEvent, Role

PASSWORD = "correct horse battery"
OPS = "cli:ops"


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


async def _events_after(store: SQLiteStore, seq: int) -> list[AuditEvent]:
    return await store.audit_events(after_seq=seq)


async def test_a_disabled_account_can_neither_sign_in_nor_act_on_its_open_session(
    store: SQLiteStore, accounts: AccountService
) -> None:
    """After disable, the password is refused and the session's next request acts as nobody."""
    await accounts.create("tom", Role.REVIEWER, PASSWORD)
    await accounts.create("boss", Role.ADMIN, PASSWORD)
    signin = SignIn(accounts)
    assert (await signin.acting("", {}, SessionClaim("tom"))).account is not None
    seq = store.chain_head()[0]

    change = await accounts.disable("tom", actor=OPS)

    assert change.changed and change.after.disabled
    with pytest.raises(Unauthenticated):
        await accounts.authenticate("tom", PASSWORD, "10.0.0.9")
    assert await signin.acting("", {}, SessionClaim("tom")) == NOBODY
    [event] = await _events_after(store, seq)
    assert (event.type, event.actor) == ("account.disabled", OPS)
    assert event.payload == {
        "name": "tom",
        "disabled": True,
        "role": "reviewer",
        "groups": ["reviewers"],
    }


async def test_disabling_twice_is_a_no_op_without_a_second_event(
    store: SQLiteStore, accounts: AccountService
) -> None:
    """The second disable reports nothing changed and appends nothing to the trail."""
    await accounts.create("tom", Role.REVIEWER, PASSWORD)
    await accounts.disable("tom", actor=OPS)
    head = store.chain_head()
    again = await accounts.disable("tom", actor=OPS)
    assert not again.changed and again.after.disabled
    assert store.chain_head() == head


async def test_enable_restores_sign_in_and_is_audited(
    store: SQLiteStore, accounts: AccountService
) -> None:
    """An enabled account signs in again; the enable is its own event."""
    await accounts.create("tom", Role.REVIEWER, PASSWORD)
    await accounts.disable("tom", actor=OPS)
    seq = store.chain_head()[0]
    assert (await accounts.enable("tom", actor=OPS)).changed
    assert (await accounts.authenticate("tom", PASSWORD, "10.0.0.9")).name == "tom"
    assert [e.type for e in await _events_after(store, seq)] == ["account.enabled"]
    assert not (await accounts.enable("tom", actor=OPS)).changed


async def test_role_and_groups_changes_reach_the_next_request_and_record_old_and_new(
    store: SQLiteStore, accounts: AccountService
) -> None:
    """An open session acts with the new role and groups; each event names old and new."""
    await accounts.create("tom", Role.REVIEWER, PASSWORD)
    signin = SignIn(accounts)
    seq = store.chain_head()[0]

    await accounts.set_role("tom", Role.SENIOR, actor=OPS)
    await accounts.set_groups("tom", ("senior", "retail", "senior"), actor=OPS)

    acting = await signin.acting("", {}, SessionClaim("tom"))
    assert acting.account is not None
    assert (acting.account.role, acting.account.groups) == (Role.SENIOR, ("senior", "retail"))
    events = await _events_after(store, seq)
    assert [(e.type, e.actor, e.payload) for e in events] == [
        (
            "account.role_changed",
            OPS,
            {"name": "tom", "old_role": "reviewer", "new_role": "senior"},
        ),
        (
            "account.groups_changed",
            OPS,
            {"name": "tom", "old_groups": ["reviewers"], "new_groups": ["senior", "retail"]},
        ),
    ]


async def test_setting_what_is_already_set_writes_nothing(
    store: SQLiteStore, accounts: AccountService
) -> None:
    """The same role or the same groups again is reported unchanged and not audited."""
    await accounts.create("tom", Role.REVIEWER, PASSWORD)
    head = store.chain_head()
    assert not (await accounts.set_role("tom", Role.REVIEWER, actor=OPS)).changed
    assert not (await accounts.set_groups("tom", ("reviewers",), actor=OPS)).changed
    assert store.chain_head() == head


async def test_bad_group_names_are_refused_as_on_creation(
    store: SQLiteStore, accounts: AccountService
) -> None:
    """A group name `users add` would refuse is refused here too, naming it; nothing changes."""
    await accounts.create("tom", Role.REVIEWER, PASSWORD)
    head = store.chain_head()
    with pytest.raises(InvalidInput, match="'bad group'"):
        await accounts.set_groups("tom", ("ok", "bad group"), actor=OPS)
    with pytest.raises(InvalidInput):
        await accounts.set_groups("tom", ("x'; --",), actor=OPS)
    stored = await accounts.get("tom")
    assert stored is not None and stored.groups == ("reviewers",)
    assert store.chain_head() == head


async def test_unknown_names_are_not_found(accounts: AccountService) -> None:
    """Every change to a name no account has raises NotFound naming it."""
    for change in (
        accounts.disable("ghost", actor=OPS),
        accounts.enable("ghost", actor=OPS),
        accounts.set_role("ghost", Role.ADMIN, actor=OPS),
        accounts.set_groups("ghost", ("reviewers",), actor=OPS),
    ):
        with pytest.raises(NotFound, match="ghost"):
            await change


async def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(
    store: SQLiteStore, accounts: AccountService
) -> None:
    """With one enabled admin both are refused with the reason; with a second, both pass."""
    await accounts.create("boss", Role.ADMIN, PASSWORD)
    await accounts.create("deputy", Role.ADMIN, PASSWORD)
    await accounts.disable("deputy", actor=OPS)  # a disabled admin does not count
    head = store.chain_head()
    with pytest.raises(FailedPrecondition, match="last enabled admin"):
        await accounts.disable("boss", actor=OPS)
    with pytest.raises(FailedPrecondition, match="last enabled admin"):
        await accounts.set_role("boss", Role.SENIOR, actor=OPS)
    assert store.chain_head() == head
    await accounts.set_groups("boss", ("ops",), actor=OPS)  # not a demotion
    await accounts.enable("deputy", actor=OPS)
    assert (await accounts.set_role("boss", Role.SENIOR, actor=OPS)).changed
    with pytest.raises(FailedPrecondition, match="last enabled admin"):
        await accounts.disable("deputy", actor=OPS)
