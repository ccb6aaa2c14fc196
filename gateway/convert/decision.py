"""``Decision`` <-> ``hitl.gateway.v1.Decision``, both directions of one mapping.

The server sends decisions with ``decision_to_pb``; the client reads them back with
``decision_from_pb``. Kept together so a field added to one side is added to the other, and one
round-trip test covers both. Only generated code and domain types are imported: the client must
not pull in the server's core.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway.types import Decision, ModelRef, Review, Status, Validation, Verdict

__all__ = ["decision_from_pb", "decision_to_pb"]

_STATUS = {
    "PENDING_REVIEW": pb.PENDING_REVIEW,
    "IN_REVIEW": pb.IN_REVIEW,
    "APPROVED": pb.APPROVED,
    "REJECTED": pb.REJECTED,
    "OVERRIDDEN": pb.OVERRIDDEN,
    "EXPIRED": pb.EXPIRED,
}


def _set_ts(dt: datetime, msg: timestamp_pb2.Timestamp) -> None:
    # Timestamp.FromDatetime goes through timetuples and costs several microseconds; the
    # domain's datetimes are always tz-aware, so integer arithmetic on the epoch suffices.
    delta = dt - _EPOCH
    msg.seconds = delta.days * 86_400 + delta.seconds
    msg.nanos = delta.microseconds * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _fill_struct(msg: struct_pb2.Struct, data: dict[str, Any]) -> None:
    """Like ``Struct.update`` but with the common cases first (numbers, strings, nesting)."""
    fields = msg.fields
    for key, value in data.items():
        _fill_value(fields[key], value)


def _fill_value(target: struct_pb2.Value, value: Any) -> None:
    # bool before int: bool is an int subclass
    if value is True or value is False:
        target.bool_value = value
    elif isinstance(value, (float, int)):
        target.number_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, dict):
        _fill_struct(target.struct_value, value)
    elif isinstance(value, (list, tuple)):
        values = target.list_value.values
        for item in value:
            _fill_value(values.add(), item)
    elif value is None:
        target.null_value = struct_pb2.NULL_VALUE
    else:
        raise TypeError(f"cannot put {type(value).__name__} into a protobuf Struct")


def decision_to_pb(d: Decision) -> pb.Decision:
    """The wire form of ``d``, input included: give it only decisions the pipeline opened."""
    msg = pb.Decision(
        id=d.id,
        application=d.application,
        tier=d.tier,
        status=_STATUS[d.status.value],
        reasons=d.reasons,
        rule=d.rule,
        trace_id=d.trace_id,
        policy_version=d.policy_version,
        subject_ref=d.subject_ref,
        labels=d.labels,
        approvals_needed=d.approvals_needed,
        requested_by=d.requested_by,
    )
    # Always present, so an erased input reads as an explicit empty object, not a missing one.
    msg.input.SetInParent()
    _fill_struct(msg.input, d.input)
    if d.model is not None:
        m = msg.model
        m.backend = d.model.backend
        m.name = d.model.name
        m.version = d.model.version
        m.validation = d.model.validation.value
    if d.model_output is not None:
        _fill_struct(msg.model_output, d.model_output)
    if d.final_output is not None:
        if d.final_output is d.model_output:  # the approved case: convert once
            msg.final_output.CopyFrom(msg.model_output)
        else:
            _fill_struct(msg.final_output, d.final_output)
    for r in d.reviews:
        msg.reviews.append(_review_to_pb(r))
    _set_ts(d.created_at, msg.created_at)
    _set_ts(d.updated_at, msg.updated_at)
    if d.review_deadline is not None:
        _set_ts(d.review_deadline, msg.review_deadline)
    return msg


def _review_to_pb(r: Review) -> pb.Review:
    msg = pb.Review(reviewer=r.reviewer, role=r.role, verdict=r.verdict.value, reason=r.reason)
    _set_ts(r.at, msg.at)
    if r.output is not None:
        _fill_struct(msg.output, r.output)
    return msg


def _datetime(msg: timestamp_pb2.Timestamp) -> datetime:
    return msg.ToDatetime(tzinfo=UTC)


def _dict(msg: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(msg)


def decision_from_pb(msg: pb.Decision) -> Decision:
    """Convert a wire Decision to the domain type."""
    model = None
    if msg.HasField("model"):
        m = msg.model
        model = ModelRef(m.backend, m.name, m.version, Validation(m.validation))
    return Decision(
        id=msg.id,
        application=msg.application,
        tier=msg.tier,
        status=Status(pb.DecisionStatus.Name(msg.status)),
        input=_dict(msg.input),
        model=model,
        model_output=_dict(msg.model_output) if msg.HasField("model_output") else None,
        final_output=_dict(msg.final_output) if msg.HasField("final_output") else None,
        reasons=tuple(msg.reasons),
        rule=msg.rule,
        created_at=_datetime(msg.created_at),
        updated_at=_datetime(msg.updated_at),
        trace_id=msg.trace_id,
        policy_version=msg.policy_version,
        subject_ref=msg.subject_ref,
        labels=dict(msg.labels),
        reviews=tuple(
            Review(
                reviewer=r.reviewer,
                role=r.role,
                verdict=Verdict(r.verdict),
                reason=r.reason,
                at=_datetime(r.at),
                output=_dict(r.output) if r.HasField("output") else None,
            )
            for r in msg.reviews
        ),
        approvals_needed=msg.approvals_needed,
        review_deadline=_datetime(msg.review_deadline) if msg.HasField("review_deadline") else None,
        requested_by=msg.requested_by,
    )
