"""Protobuf <-> domain conversion for hitl.admin.v1, in one place (the servicer and the
``--target`` side of the CLI both use it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from google.protobuf import timestamp_pb2

from gateway._pb.hitl.admin.v1 import admin_pb2 as pb
from gateway.core.switches import APPLICATION, BACKEND
from gateway.errors import InvalidInput
from gateway.store.outbox import OutboxMessage
from gateway.types import SwitchState

_KINDS = {APPLICATION: pb.SWITCH_KIND_APPLICATION, BACKEND: pb.SWITCH_KIND_BACKEND}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}

SwitchRow = tuple[str, str, SwitchState | None]
"""``(kind, name, state or None when never switched)``, as `KillSwitches.states` gives."""


def kind_from_pb(kind: pb.SwitchKind.ValueType) -> str:
    """``application`` or ``backend``; raises `InvalidInput` naming ``kind`` otherwise."""
    try:
        return _KIND_NAMES[kind]
    except KeyError:
        raise InvalidInput("kind", "expected SWITCH_KIND_APPLICATION or _BACKEND") from None


def kind_to_pb(kind: str) -> pb.SwitchKind.ValueType:
    """The enum of ``application`` or ``backend``; raises `InvalidInput` otherwise."""
    try:
        return _KINDS[kind]
    except KeyError:
        raise InvalidInput("kind", f"expected application or backend, not {kind!r}") from None


def switch_to_pb(kind: str, name: str, state: SwitchState | None) -> pb.Switch:
    msg = pb.Switch(kind=kind_to_pb(kind), name=name)
    if state is not None:
        msg.paused = state.paused
        msg.changed_by = state.changed_by
        msg.reason = state.reason
        msg.changed_at.CopyFrom(_timestamp(state))
    return msg


def switch_from_pb(msg: pb.Switch) -> SwitchRow:
    """A switch as `switch_to_pb` wrote it (never switched: no state)."""
    kind = kind_from_pb(msg.kind)
    if not msg.HasField("changed_at"):
        return kind, msg.name, None
    at = msg.changed_at.ToDatetime(tzinfo=UTC)
    return kind, msg.name, SwitchState(kind, msg.name, msg.paused, msg.changed_by, at, msg.reason)


def switches_to_pb(rows: list[SwitchRow]) -> pb.ListSwitchesResponse:
    return pb.ListSwitchesResponse(switches=[switch_to_pb(*r) for r in rows])


def _timestamp(state: SwitchState) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(state.changed_at)
    return ts


def outbox_to_pb(m: OutboxMessage) -> pb.OutboxMessage:
    msg = pb.OutboxMessage(
        id=m.id,
        channel=m.channel,
        topic=m.topic,
        application=m.application,
        decision_id=m.decision_id,
        attempts=m.attempts,
        last_error=m.last_error,
    )
    msg.created_at.FromDatetime(m.created_at)
    if m.delivered_at is not None:
        msg.delivered_at.FromDatetime(m.delivered_at)
    if m.dead_at is not None:
        msg.dead_at.FromDatetime(m.dead_at)
    return msg


def outbox_from_pb(msg: pb.OutboxMessage) -> OutboxMessage:
    """A message as `outbox_to_pb` wrote it (its body is not sent: empty)."""

    def at(field: Literal["delivered_at", "dead_at"]) -> datetime | None:
        return getattr(msg, field).ToDatetime(tzinfo=UTC) if msg.HasField(field) else None

    created = msg.created_at.ToDatetime(tzinfo=UTC)
    return OutboxMessage(
        id=msg.id,
        channel=msg.channel,
        topic=msg.topic,
        application=msg.application,
        decision_id=msg.decision_id,
        body={},
        created_at=created,
        since=created,
        attempts=msg.attempts,
        delivered_at=at("delivered_at"),
        dead_at=at("dead_at"),
        last_error=msg.last_error,
    )
