"""Protobuf <-> domain conversion for hitl.gateway.v1, in one place.

The core never sees generated classes. Input conversion walks the Struct once and enforces the
input limits on the way, so an oversized request is refused before anything else touches it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from math import isfinite
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway.core.limits import InputLimits
from gateway.core.pipeline import DecideCommand
from gateway.errors import InvalidInput, TooLarge
from gateway.types import Decision, Review

_STATUS = {
    "PENDING_REVIEW": pb.PENDING_REVIEW,
    "IN_REVIEW": pb.IN_REVIEW,
    "APPROVED": pb.APPROVED,
    "REJECTED": pb.REJECTED,
    "OVERRIDDEN": pb.OVERRIDDEN,
    "EXPIRED": pb.EXPIRED,
}


class _Budget:
    __slots__ = ("keys", "limits")

    def __init__(self, limits: InputLimits) -> None:
        self.limits = limits
        self.keys = 0


def _value(v: struct_pb2.Value, path: str, depth: int, budget: _Budget) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        n = v.number_value
        if not isfinite(n):
            raise InvalidInput(path, "must be a finite number (JSON has no NaN or infinity)")
        return n
    if kind == "string_value":
        s = v.string_value
        if len(s) > budget.limits.max_string:
            raise TooLarge(
                path, f"string of {len(s)} characters exceeds {budget.limits.max_string}"
            )
        return s
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return _struct(v.struct_value, path, depth + 1, budget)
    if kind == "list_value":
        return _list(v.list_value, path, depth + 1, budget)
    if kind == "null_value":
        return None
    raise InvalidInput(path, "value has no kind set")


def _struct(s: struct_pb2.Struct, path: str, depth: int, budget: _Budget) -> dict[str, Any]:
    limits = budget.limits
    if depth > limits.max_depth:
        raise TooLarge(path, f"nested deeper than {limits.max_depth} levels")
    fields = s.fields
    budget.keys += len(fields)
    if budget.keys > limits.max_keys:
        raise TooLarge(path, f"more than {limits.max_keys} keys in total")
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if len(key) > limits.max_string:
            raise TooLarge(path, f"key of {len(key)} characters exceeds {limits.max_string}")
        out[key] = _value(value, f"{path}.{key}", depth, budget)
    return out


def _list(lv: struct_pb2.ListValue, path: str, depth: int, budget: _Budget) -> list[Any]:
    limits = budget.limits
    if depth > limits.max_depth:
        raise TooLarge(path, f"nested deeper than {limits.max_depth} levels")
    values = lv.values
    budget.keys += len(values)
    if budget.keys > limits.max_keys:
        raise TooLarge(path, f"more than {limits.max_keys} keys in total")
    return [_value(v, f"{path}[{i}]", depth, budget) for i, v in enumerate(values)]


def struct_to_dict(s: struct_pb2.Struct, path: str, limits: InputLimits) -> dict[str, Any]:
    """Convert a Struct to plain Python, enforcing ``limits``; errors name the field path."""
    return _struct(s, path, 1, _Budget(limits))


def _check_id(name: str, value: str, limits: InputLimits) -> None:
    if len(value) > limits.max_id_length:
        raise TooLarge(name, f"longer than {limits.max_id_length} characters")


def decide_command(req: pb.DecideRequest, limits: InputLimits) -> DecideCommand:
    if not req.application:
        raise InvalidInput("application", "is required")
    _check_id("application", req.application, limits)
    _check_id("subject_ref", req.subject_ref, limits)
    _check_id("idempotency_key", req.idempotency_key, limits)
    if not req.HasField("input"):
        raise InvalidInput("input", "is required")
    if len(req.labels) > limits.max_labels:
        raise TooLarge("labels", f"more than {limits.max_labels} labels")
    labels = dict(req.labels)
    for k, v in labels.items():
        _check_id(f"labels.{k[:64]}", k, limits)
        _check_id(f"labels.{k[:64]}", v, limits)
    wait = 0.0
    if req.HasField("wait"):
        w = req.wait
        if w.seconds < 0 or w.nanos < 0:
            raise InvalidInput("wait", "must not be negative")
        wait = w.seconds + w.nanos / 1e9
        if wait > limits.max_wait_seconds:
            raise InvalidInput("wait", f"must be at most {limits.max_wait_seconds:g} seconds")
    return DecideCommand(
        application=req.application,
        input=struct_to_dict(req.input, "input", limits),
        subject_ref=req.subject_ref,
        idempotency_key=req.idempotency_key,
        labels=labels,
        wait=wait,
    )


def decision_id(value: str) -> str:
    if not value:
        raise InvalidInput("decision_id", "is required")
    if len(value) > 64:
        raise InvalidInput("decision_id", "is not a decision id")
    return value


def _ts(dt: datetime, msg: timestamp_pb2.Timestamp) -> None:
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
    _ts(d.created_at, msg.created_at)
    _ts(d.updated_at, msg.updated_at)
    if d.review_deadline is not None:
        _ts(d.review_deadline, msg.review_deadline)
    return msg


def _review_to_pb(r: Review) -> pb.Review:
    msg = pb.Review(reviewer=r.reviewer, role=r.role, verdict=r.verdict.value, reason=r.reason)
    _ts(r.at, msg.at)
    if r.output is not None:
        _fill_struct(msg.output, r.output)
    return msg
