"""The reviewer UI session side of the store protocol, on a real SQLite file and a real
PostgreSQL database."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from conftest import AnyStore
from store_factories import T0

from gateway.types import SessionRecord


def _record(name: str, *, expires_in: timedelta = timedelta(minutes=30)) -> SessionRecord:
    return SessionRecord(
        id_hash=hashlib.sha256(name.encode()).hexdigest(),
        user=name,
        csrf=f"csrf-{name}",
        sso=name.startswith("sso"),
        signed_in_at=T0,
        last_seen=T0,
        expires_at=T0 + expires_in,
    )


async def test_a_stored_session_reads_back_field_for_field(store: AnyStore) -> None:
    """What is put is what is got, times to the microsecond, the SSO flag included."""
    plain, sso = _record("ann"), _record("sso-bob")
    await store.put_session(plain)
    await store.put_session(sso)
    assert await store.get_session(plain.id_hash) == plain
    assert await store.get_session(sso.id_hash) == sso
    assert await store.get_session("0" * 64) is None


async def test_putting_with_replaces_swaps_the_old_session_out(store: AnyStore) -> None:
    """Signing in again stores the new session and deletes the one it replaces."""
    old, new = _record("ann"), _record("ann-again")
    await store.put_session(old)
    await store.put_session(new, replaces=old.id_hash)
    assert await store.get_session(old.id_hash) is None
    assert await store.get_session(new.id_hash) == new


async def test_touch_moves_last_seen_but_never_revives_a_deleted_session(store: AnyStore) -> None:
    """Activity updates last_seen and expiry; after deletion the same touch writes nothing."""
    rec = _record("ann")
    await store.put_session(rec)
    seen, until = T0 + timedelta(minutes=5), T0 + timedelta(minutes=35)
    await store.touch_session(rec.id_hash, seen, until)
    got = await store.get_session(rec.id_hash)
    assert got is not None and (got.last_seen, got.expires_at) == (seen, until)
    assert got.signed_in_at == T0
    await store.delete_session(rec.id_hash)
    await store.touch_session(rec.id_hash, seen, until)
    assert await store.get_session(rec.id_hash) is None


async def test_purge_deletes_only_sessions_past_their_expiry(store: AnyStore) -> None:
    """Purging at a time removes exactly the rows that expired before it and counts them."""
    gone = [_record(f"old{i}", expires_in=timedelta(minutes=i)) for i in range(1, 4)]
    kept = _record("fresh", expires_in=timedelta(hours=1))
    for rec in (*gone, kept):
        await store.put_session(rec)
    assert await store.purge_sessions(T0 + timedelta(minutes=30)) == 3
    assert await store.purge_sessions(T0 + timedelta(minutes=30)) == 0
    for rec in gone:
        assert await store.get_session(rec.id_hash) is None
    assert await store.get_session(kept.id_hash) == kept


async def test_session_writes_add_nothing_to_the_audit_chain(store: AnyStore) -> None:
    """Sign-in, activity, sign-out and purge leave the audit trail as it was."""
    head = store.chain_head()
    rec = _record("ann")
    await store.put_session(rec)
    await store.touch_session(rec.id_hash, T0, T0 + timedelta(hours=1))
    await store.delete_session(rec.id_hash)
    await store.purge_sessions(T0 + timedelta(days=1))
    assert store.chain_head() == head
    assert await store.audit_events() == []
