"""Changing an account in the store (role, groups, disabled) on a real SQLite file and a real
PostgreSQL database: one transaction with its audit event, sessions and leases included."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import AnyStore
from raw import verify_chain
from store_factories import T0, created_event, decision_task, make_decision

from gateway.errors import Conflict, FailedPrecondition, NotFound, PermissionDenied
from gateway.store.protocol import AccountChanges
from gateway.types import Account, AuditDraft, Role, SessionRecord, TaskKind

NOW = T0 + timedelta(minutes=1)
LEASE = NOW + timedelta(minutes=10)


def _event(kind: str, name: str) -> AuditDraft:
    return AuditDraft("", kind, "cli:ops", {"name": name})


def _session(user: str, n: int = 0) -> SessionRecord:
    return SessionRecord(
        id_hash=hashlib.sha256(f"{user}-{n}".encode()).hexdigest(),
        user=user,
        csrf="csrf",
        sso=False,
        signed_in_at=T0,
        last_seen=T0,
        expires_at=T0 + timedelta(hours=1),
    )


async def _account(store: AnyStore, name: str, role: Role = Role.REVIEWER) -> Account:
    account = Account(name, role, ("reviewers",), "argon2$x", T0)
    await store.add_account(account, _event("account.created", name))
    return account


async def _claimed(store: AnyStore, reviewer: str, kind: TaskKind = TaskKind.DECISION) -> str:
    d = make_decision()
    await store.create_decision(d, [created_event(d)], [decision_task(d, kind=kind)])
    await store.claim_task(d.id, kind, reviewer, NOW, LEASE)
    return d.id


async def test_disabling_ends_sessions_and_releases_leases_with_its_event(
    store: AnyStore, location: str
) -> None:
    """Disabling deletes only that account's sessions, frees its open tasks, chains its event."""
    tom = await _account(store, "tom")
    await _account(store, "ann")
    for rec in (_session("tom", 1), _session("tom", 2), _session("ann")):
        await store.put_session(rec)
    held = [await _claimed(store, "tom"), await _claimed(store, "tom", TaskKind.QA)]
    anns = await _claimed(store, "ann")
    seq = store.chain_head()[0]

    changes = await store.change_account(
        tom, replace(tom, disabled=True), _event("account.disabled", "tom")
    )

    assert changes == AccountChanges(sessions_ended=2, leases_released=2)
    assert (await store.get_account("tom")) == replace(tom, disabled=True)
    assert await store.get_session(_session("tom", 1).id_hash) is None
    assert await store.get_session(_session("tom", 2).id_hash) is None
    assert await store.get_session(_session("ann").id_hash) is not None
    decision = await store.open_task(held[0], TaskKind.DECISION)
    qa = await store.open_task(held[1], TaskKind.QA)
    assert decision is not None and decision.claimed_by is None
    assert qa is not None and qa.claimed_by is None
    await store.claim_task(held[0], TaskKind.DECISION, "ann", NOW, LEASE)  # free at once
    still = await store.open_task(anns, TaskKind.DECISION)
    assert still is not None and still.claimed_by == "ann"
    events = await store.audit_events(after_seq=seq)
    assert [(e.type, e.actor, e.payload) for e in events] == [
        ("account.disabled", "cli:ops", {"name": "tom"})
    ]
    assert (await verify_chain(location)).ok


async def test_a_disabled_account_cannot_claim(store: AnyStore) -> None:
    """A claim checks the account in its own transaction: one that passed the UI's check just
    before the account was disabled leases nothing."""
    tom = await _account(store, "tom")
    await store.change_account(tom, replace(tom, disabled=True), _event("account.disabled", "tom"))
    d = make_decision()
    await store.create_decision(d, [created_event(d)], [decision_task(d)])
    with pytest.raises(PermissionDenied, match="disabled"):
        await store.claim_task(d.id, TaskKind.DECISION, "tom", NOW, LEASE)
    task = await store.open_task(d.id, TaskKind.DECISION)
    assert task is not None and task.claimed_by is None


async def test_role_and_group_changes_touch_neither_sessions_nor_leases(store: AnyStore) -> None:
    """A re-role or re-group rewrites the row only: the session and the lease stay."""
    tom = await _account(store, "tom")
    await store.put_session(_session("tom"))
    did = await _claimed(store, "tom")
    senior = replace(tom, role=Role.SENIOR, groups=("senior", "retail"))

    changes = await store.change_account(tom, senior, _event("account.role_changed", "tom"))

    assert changes == AccountChanges()
    assert await store.get_account("tom") == senior
    assert await store.get_session(_session("tom").id_hash) is not None
    task = await store.open_task(did, TaskKind.DECISION)
    assert task is not None and task.claimed_by == "tom"


async def test_a_change_from_a_stale_read_is_refused_and_writes_nothing(store: AnyStore) -> None:
    """When the account changed since it was read, the change and its event are not stored."""
    tom = await _account(store, "tom")
    await store.change_account(tom, replace(tom, role=Role.SENIOR), _event("x.role", "tom"))
    head = store.chain_head()
    with pytest.raises(Conflict, match="changed meanwhile"):
        await store.change_account(tom, replace(tom, disabled=True), _event("x.off", "tom"))
    stored = await store.get_account("tom")
    assert stored is not None and not stored.disabled and stored.role is Role.SENIOR
    assert store.chain_head() == head


async def test_an_unknown_account_is_not_found(store: AnyStore) -> None:
    """Changing a name no account has raises NotFound and records no event."""
    ghost = Account("ghost", Role.REVIEWER, (), "argon2$x", T0)
    head = store.chain_head()
    with pytest.raises(NotFound):
        await store.change_account(ghost, replace(ghost, disabled=True), _event("x", "ghost"))
    assert store.chain_head() == head


async def test_keep_admin_refuses_to_take_away_the_last_enabled_admin(store: AnyStore) -> None:
    """With keep_admin the change passes only while another enabled admin remains."""
    boss = await _account(store, "boss", Role.ADMIN)
    deputy = await _account(store, "deputy", Role.ADMIN)
    await store.change_account(
        deputy, replace(deputy, disabled=True), _event("x", "deputy"), keep_admin=True
    )
    head = store.chain_head()
    with pytest.raises(FailedPrecondition, match="last enabled admin"):
        await store.change_account(
            boss, replace(boss, role=Role.AUDITOR), _event("x", "boss"), keep_admin=True
        )
    assert await store.get_account("boss") == boss
    assert store.chain_head() == head


async def test_two_admins_disabling_each_other_at_once_leave_one(store: AnyStore) -> None:
    """The other-admins count is taken inside the transaction: of two concurrent
    disablings of the only two admins, exactly one succeeds."""
    boss = await _account(store, "boss", Role.ADMIN)
    deputy = await _account(store, "deputy", Role.ADMIN)
    results = await asyncio.gather(
        *(
            store.change_account(a, replace(a, disabled=True), _event("x", a.name), keep_admin=True)
            for a in (boss, deputy)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, FailedPrecondition) for r in results) == 1
    enabled = [a.name for a in await store.list_accounts() if not a.disabled]
    assert len(enabled) == 1
