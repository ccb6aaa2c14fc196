"""The model inventory in the store: records, compare-and-set transitions, their events and
announcements, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.audit.events import EventType, event
from gateway.audit.verifier import verify_events
from gateway.errors import Conflict, NotFound
from gateway.modelrisk.record import ModelKey, ModelRecord, ModelStatus
from gateway.store.postgres.store import PostgresStore
from gateway.store.sqlite.migrations import SQLITE_MIGRATIONS, apply_migrations
from gateway.types import Account, AuditDraft, Role
from tests.unit.store.conftest import AnyStore

KEY = ModelKey("credit-scorer", "credit_v3", "3")
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def _record(key: ModelKey = KEY, **changes: object) -> ModelRecord:
    base = ModelRecord(
        key=key,
        owner="olga",
        validator="",
        intended_use="credit limits for retail customers",
        max_tier="limited",
        status=ModelStatus.REGISTERED,
        validated_at=None,
        validation_expires_at=None,
        documentation_url="https://wiki.example/credit_v3",
        limitations="not for business customers",
        registered_at=T0,
        updated_at=T0,
        updated_by="cli:olga",
    )
    return replace(base, **changes)


def _event(type: EventType, key: ModelKey = KEY) -> AuditDraft:
    payload = {"model": str(key), "backend": key.backend, "name": key.name, "version": key.version}
    return event(type, "", "cli:test", payload)


async def test_a_registered_record_reads_back_field_for_field(store: AnyStore) -> None:
    """register_model stores every field (times, None, escalation) and list/get return it."""
    record = _record(escalated=True, escalation_reason="drift", escalated_at=T0)
    await store.register_model(record, _event(EventType.MODEL_REGISTERED))
    other = _record(ModelKey("fraud-scorer", "fraud_v1", "1"))
    await store.register_model(other, _event(EventType.MODEL_REGISTERED, other.key))
    assert await store.get_model(KEY) == record
    assert await store.list_models() == [record, other]
    assert await store.get_model(ModelKey("credit-scorer", "credit_v3", "4")) is None


async def test_registering_a_key_twice_is_a_conflict_and_writes_no_event(store: AnyStore) -> None:
    """A second register_model of one key raises Conflict; only the first event is stored."""
    await store.register_model(_record(), _event(EventType.MODEL_REGISTERED))
    with pytest.raises(Conflict, match="already registered"):
        await store.register_model(
            _record(owner="mallory"),
            _event(EventType.MODEL_REGISTERED),
        )
    assert (await store.get_model(KEY)).owner == "olga"  # type: ignore[union-attr]
    assert [e.type for e in await store.model_events(KEY)] == ["model.registered"]


async def test_update_is_a_compare_and_set_on_the_status(store: AnyStore) -> None:
    """update_model applies only from the expected status: of two transitions computed from
    one read, exactly one lands and the loser writes no event; an unknown key is NotFound."""
    await store.register_model(_record(), _event(EventType.MODEL_REGISTERED))
    expires = T0 + timedelta(days=365)
    validated = _record(
        status=ModelStatus.VALIDATED,
        validator="vic",
        validated_at=T0,
        validation_expires_at=expires,
    )
    retired = _record(status=ModelStatus.RETIRED)
    results = await asyncio.gather(
        store.update_model(validated, ModelStatus.REGISTERED, _event(EventType.MODEL_VALIDATED)),
        store.update_model(retired, ModelStatus.REGISTERED, _event(EventType.MODEL_RETIRED)),
        return_exceptions=True,
    )
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(conflicts) == 1 and results.count(None) == 1
    stored = await store.get_model(KEY)
    assert stored in (validated, retired)
    assert "no longer registered" in conflicts[0].message
    assert len(await store.model_events(KEY)) == 2  # registered + the winner's
    with pytest.raises(NotFound):
        await store.update_model(
            _record(ModelKey("x", "y", "1")),
            ModelStatus.REGISTERED,
            _event(EventType.MODEL_RETIRED, ModelKey("x", "y", "1")),
        )


async def test_a_transition_leaves_the_escalation_as_stored(store: AnyStore) -> None:
    """update_model writes the lifecycle fields only: an escalation stored meanwhile stays."""
    await store.register_model(
        _record(escalated=True, escalation_reason="override rate", escalated_at=T0),
        _event(EventType.MODEL_REGISTERED),
    )
    await store.update_model(
        _record(status=ModelStatus.RETIRED, updated_by="user:rm"),
        ModelStatus.REGISTERED,
        _event(EventType.MODEL_RETIRED),
    )
    stored = await store.get_model(KEY)
    assert stored is not None
    assert (stored.status, stored.updated_by) == (ModelStatus.RETIRED, "user:rm")
    assert (stored.escalated, stored.escalation_reason, stored.escalated_at) == (
        True,
        "override rate",
        T0,
    )


async def test_model_events_are_those_naming_the_key_in_chain_order(store: AnyStore) -> None:
    """model_events returns the model.* events of one key only, oldest first, and the chain
    with them verifies."""
    other = ModelKey("credit-scorer", "credit_v3", "4")
    await store.register_model(_record(), _event(EventType.MODEL_REGISTERED))
    await store.register_model(_record(other), _event(EventType.MODEL_REGISTERED, other))
    await store.update_model(
        _record(status=ModelStatus.RETIRED),
        ModelStatus.REGISTERED,
        _event(EventType.MODEL_RETIRED),
    )
    mine = await store.model_events(KEY)
    assert [e.type for e in mine] == ["model.registered", "model.retired"]
    assert [e.type for e in await store.model_events(other)] == ["model.registered"]
    assert verify_events(await store.audit_events(limit=100)).ok


async def test_postgres_announces_inventory_changes_to_subscribers(
    store: AnyStore,
) -> None:
    """On PostgreSQL every committed change calls subscribe_models callbacks (NOTIFY on
    hitl_models); on SQLite nothing is announced."""
    calls: list[int] = []
    store.subscribe_models(lambda: calls.append(1))
    await store.register_model(_record(), _event(EventType.MODEL_REGISTERED))
    if not isinstance(store, PostgresStore):
        await asyncio.sleep(0.1)
        assert calls == []
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not calls:
        assert loop.time() < deadline, "no announcement within 5 s"
        await asyncio.sleep(0.02)


async def test_accounts_may_have_the_model_risk_role(store: AnyStore) -> None:
    """An account with the model-risk role is stored and read back (the role CHECK allows it)."""
    account = Account("mara", Role.MODEL_RISK, (), "hash", T0)
    created = event(EventType.ACCOUNT_CREATED, "", "system", {"name": "mara"})
    await store.add_account(account, created)
    assert await store.get_account("mara") == account


def test_the_sqlite_role_migration_keeps_every_account(tmp_path: Path) -> None:
    """Rebuilding the accounts table for the new role keeps the rows a file already holds."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        before = tuple(m for m in SQLITE_MIGRATIONS if m.version < 9)
        apply_migrations(conn, "2026-01-01T00:00:00.000000Z", before)
        row = ("ada", "admin", '["x"]', "h", "2026-01-01T00:00:00.000000Z", 1)
        conn.execute("INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?)", row)
        later = [m.version for m in SQLITE_MIGRATIONS if m.version >= 9]
        assert apply_migrations(conn, "2026-01-02T00:00:00.000000Z") == later
        assert conn.execute("SELECT * FROM accounts").fetchall() == [row]
        conn.execute("INSERT INTO accounts VALUES ('mara', 'model-risk', '[]', 'h', 't', 0)")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO accounts VALUES ('eve', 'root', '[]', 'h', 't', 0)")
    finally:
        conn.close()
