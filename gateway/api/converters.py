"""Protobuf <-> domain conversion for hitl.gateway.v1, in one place.

The core never sees generated classes. Input conversion walks the Struct once and enforces the
input limits on the way, so an oversized request is refused before anything else touches it.
The Decision mapping lives in ``gateway.convert.decision`` beside its inverse, which the client
uses; it is re-exported here so the servicers convert through this one module.
"""

from __future__ import annotations

from math import isfinite
from typing import Any

from google.protobuf import struct_pb2

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway.convert.decision import decision_to_pb as decision_to_pb
from gateway.core.command import DecideCommand
from gateway.core.limits import InputLimits, requester
from gateway.errors import InvalidInput, TooLarge


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
        requested_by=requester(req.requested_by, "requested_by", limits),
        callback_url=_callback_url(req.callback_url),
    )


MAX_URL = 2048


def _callback_url(value: str) -> str:
    """The URL as given (checked against the application's policy in the core)."""
    if len(value) > MAX_URL:
        raise InvalidInput("callback_url", f"longer than {MAX_URL} characters")
    return value


def decision_id(value: str) -> str:
    if not value:
        raise InvalidInput("decision_id", "is required")
    if len(value) > 64:
        raise InvalidInput("decision_id", "is not a decision id")
    return value
