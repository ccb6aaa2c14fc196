"""Protobuf <-> domain conversion of the model inventory messages of hitl.admin.v1, in one
place (the AdminService servicer and the ``--target`` side of ``hitl-gateway models`` use it)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from google.protobuf import timestamp_pb2

from gateway._pb.hitl.admin.v1 import admin_pb2 as pb
from gateway.errors import InvalidInput
from gateway.modelrisk.record import ModelKey, ModelRecord, ModelStatus
from gateway.types import AuditEvent

_STATUSES = {
    ModelStatus.REGISTERED: pb.MODEL_STATUS_REGISTERED,
    ModelStatus.VALIDATED: pb.MODEL_STATUS_VALIDATED,
    ModelStatus.APPROVED: pb.MODEL_STATUS_APPROVED,
    ModelStatus.SUSPENDED: pb.MODEL_STATUS_SUSPENDED,
    ModelStatus.RETIRED: pb.MODEL_STATUS_RETIRED,
}
_STATUS_NAMES = {v: k for k, v in _STATUSES.items()}

TRANSITIONS = {
    "validate": pb.MODEL_TRANSITION_VALIDATE,
    "approve": pb.MODEL_TRANSITION_APPROVE,
    "suspend": pb.MODEL_TRANSITION_SUSPEND,
    "resume": pb.MODEL_TRANSITION_RESUME,
    "retire": pb.MODEL_TRANSITION_RETIRE,
}
"""The lifecycle's verbs (as the CLI spells them) and their enum values."""
_TRANSITION_NAMES = {v: k for k, v in TRANSITIONS.items()}


def key_to_pb(key: ModelKey) -> pb.ModelKey:
    return pb.ModelKey(backend=key.backend, name=key.name, version=key.version)


def key_from_pb(msg: pb.ModelKey) -> ModelKey:
    return ModelKey(msg.backend, msg.name, msg.version)


def transition_from_pb(value: pb.ModelTransition.ValueType) -> str:
    """The verb of ``value``; raises `InvalidInput` naming ``transition`` when unset."""
    try:
        return _TRANSITION_NAMES[value]
    except KeyError:
        raise InvalidInput("transition", "expected one of MODEL_TRANSITION_VALIDATE …") from None


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def ts_from_pb(msg: pb.ModelTransitionRequest, field: str) -> datetime | None:
    """The timestamp ``field`` of ``msg`` as an aware datetime, or None when unset."""
    if not msg.HasField(field):  # type: ignore[arg-type]
        return None
    value: timestamp_pb2.Timestamp = getattr(msg, field)
    return value.ToDatetime(tzinfo=UTC)


def record_to_pb(r: ModelRecord) -> pb.ModelRecord:
    msg = pb.ModelRecord(
        key=key_to_pb(r.key),
        owner=r.owner,
        validator=r.validator,
        intended_use=r.intended_use,
        max_tier=r.max_tier,
        status=_STATUSES[r.status],
        documentation_url=r.documentation_url,
        limitations=r.limitations,
        registered_at=_ts(r.registered_at),
        updated_at=_ts(r.updated_at),
        updated_by=r.updated_by,
        escalated=r.escalated,
        escalation_reason=r.escalation_reason,
    )
    if r.validated_at is not None:
        msg.validated_at.CopyFrom(_ts(r.validated_at))
    if r.validation_expires_at is not None:
        msg.validation_expires_at.CopyFrom(_ts(r.validation_expires_at))
    if r.escalated_at is not None:
        msg.escalated_at.CopyFrom(_ts(r.escalated_at))
    return msg


def record_from_pb(msg: pb.ModelRecord) -> ModelRecord:
    def at(field: str) -> datetime | None:
        if not msg.HasField(field):  # type: ignore[arg-type]
            return None
        value: timestamp_pb2.Timestamp = getattr(msg, field)
        return value.ToDatetime(tzinfo=UTC)

    return ModelRecord(
        key=key_from_pb(msg.key),
        owner=msg.owner,
        validator=msg.validator,
        intended_use=msg.intended_use,
        max_tier=msg.max_tier,
        status=_STATUS_NAMES[msg.status],
        validated_at=at("validated_at"),
        validation_expires_at=at("validation_expires_at"),
        documentation_url=msg.documentation_url,
        limitations=msg.limitations,
        registered_at=msg.registered_at.ToDatetime(tzinfo=UTC),
        updated_at=msg.updated_at.ToDatetime(tzinfo=UTC),
        updated_by=msg.updated_by,
        escalated=msg.escalated,
        escalation_reason=msg.escalation_reason,
        escalated_at=at("escalated_at"),
    )


def event_to_pb(e: AuditEvent) -> pb.ModelEvent:
    payload = "" if e.payload is None else orjson.dumps(e.payload).decode()
    return pb.ModelEvent(
        seq=e.seq,
        ts=_ts(e.ts),
        type=e.type,
        actor=e.actor,
        payload_json=payload,
        trace_id=e.trace_id,
    )


def event_from_pb(msg: pb.ModelEvent) -> tuple[int, datetime, str, str, dict[str, object] | None]:
    """``(seq, ts, type, actor, payload or None when erased)`` of one history event."""
    payload = orjson.loads(msg.payload_json) if msg.payload_json else None
    return msg.seq, msg.ts.ToDatetime(tzinfo=UTC), msg.type, msg.actor, payload
