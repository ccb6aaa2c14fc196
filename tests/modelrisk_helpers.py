"""Model inventory rows for tests: a model version registered in a given state, through the
store protocol (the lifecycle service's own rules are tested with it, not here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.app import Gateway
from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.modelrisk.record import ModelKey, ModelRecord, ModelStatus
from gateway.store.protocol import ReviewStore

ACTOR = "user:model-risk-test"


def model_record(
    key: ModelKey,
    status: ModelStatus = ModelStatus.APPROVED,
    *,
    max_tier: str = "high",
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> ModelRecord:
    """A record of ``key``; approved and valid for a year unless told otherwise."""
    now = now or datetime.now(UTC)
    validated = status is not ModelStatus.REGISTERED
    return ModelRecord(
        key=key,
        owner="owner@bank.test",
        validator="validator@bank.test" if validated else "",
        intended_use="tests",
        max_tier=max_tier,
        status=status,
        validated_at=now if validated else None,
        validation_expires_at=(expires_at or now + timedelta(days=365)) if validated else None,
        documentation_url="",
        limitations="",
        registered_at=now,
        updated_at=now,
        updated_by=ACTOR,
    )


async def register_model(store: ReviewStore, record: ModelRecord) -> ModelRecord:
    """Store ``record`` as a new inventory entry, with its ``model.registered`` event."""
    k = record.key
    payload = {
        "backend": k.backend,
        "name": k.name,
        "version": k.version,
        "status": record.status.value,
    }
    await store.register_model(record, audit_event(EventType.MODEL_REGISTERED, "", ACTOR, payload))
    return record


async def approve_model(
    store: ReviewStore, backend: str, name: str, version: str, *, max_tier: str = "high"
) -> ModelRecord:
    """Register ``backend/name@version`` as approved and valid for a year."""
    return await register_model(
        store, model_record(ModelKey(backend, name, version), max_tier=max_tier)
    )


async def set_status(store: ReviewStore, key: ModelKey, status: ModelStatus) -> ModelRecord:
    """Move ``key`` to ``status`` in the store (whatever the lifecycle would allow)."""
    before = await store.get_model(key)
    assert before is not None, key
    after = model_record(key, status, max_tier=before.max_tier)
    payload = {"backend": key.backend, "name": key.name, "version": key.version}
    event = audit_event(_EVENTS[status], "", ACTOR, payload)
    await store.update_model(after, before.status, event)
    return after


_EVENTS = {
    ModelStatus.VALIDATED: EventType.MODEL_VALIDATED,
    ModelStatus.APPROVED: EventType.MODEL_APPROVED,
    ModelStatus.SUSPENDED: EventType.MODEL_SUSPENDED,
    ModelStatus.RETIRED: EventType.MODEL_RETIRED,
}


async def approve_in_gateway(
    gateway: Gateway, backend: str, name: str, version: str, *, max_tier: str = "high"
) -> ModelRecord:
    """`approve_model` in a running gateway's store, and make its decision path see it now
    (instead of within the half second its follower takes)."""
    record = await approve_model(gateway.store, backend, name, version, max_tier=max_tier)
    await gateway.model_gate.refresh()
    return record
