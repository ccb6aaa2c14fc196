"""API key changes recorded in the audit chain, and a second writer process on one SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from raw import verify_chain
from store_factories import created_event, make_decision

from gateway.core.auth import new_key
from gateway.errors import Conflict
from gateway.store import SQLiteStore
from gateway.types import AuditDraft
from tests.unit.store.conftest import AnyStore


def _event(kind: str, key_id: str) -> AuditDraft:
    return AuditDraft(
        decision_id="", type=f"key.{kind}", actor="cli:ops", payload={"key_id": key_id}
    )


async def test_key_changes_carry_their_events(store: AnyStore, location: str) -> None:
    """Create and revoke append their events; a refused create or a no-op revoke appends none."""
    _, record = new_key(("credit-limit",))
    await store.add_api_key(record, _event("created", record.key_id))
    try:
        await store.add_api_key(record, _event("created", record.key_id))
    except Conflict:
        pass
    else:
        raise AssertionError("a second key with the same id was stored")
    assert await store.revoke_api_key(record.key_id, _event("revoked", record.key_id))
    assert not await store.revoke_api_key(record.key_id, _event("revoked", record.key_id))
    assert not await store.revoke_api_key("missing", _event("revoked", "missing"))
    types = [(e.type, (e.payload or {}).get("key_id")) for e in await store.audit_events()]
    assert types == [("key.created", record.key_id), ("key.revoked", record.key_id)]
    assert (await verify_chain(location)).ok


async def test_two_writers_on_one_sqlite_file_keep_one_chain(tmp_path: Path) -> None:
    """Two stores (as two processes would) writing to one file interleave without a fork."""
    path = tmp_path / "gateway.db"
    first, second = SQLiteStore(path), SQLiteStore(path)
    await first.start()
    await second.start()
    try:

        async def write(store: SQLiteStore, n: int) -> None:
            for _ in range(n):
                d = make_decision()
                await store.create_decision(d, [created_event(d)], [])

        await asyncio.gather(write(first, 40), write(second, 40))
        _, record = new_key(())
        await second.add_api_key(record, _event("created", record.key_id))
        await write(first, 5)
    finally:
        await first.stop()
        await second.stop()
    result = await verify_chain(str(path))
    assert result.ok
    assert result.checked == 86
