"""Property tests: input conversion, policy evaluation and the audit chain under generated data."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api.converters import struct_to_dict
from gateway.audit.chain import GENESIS, canonical_bytes, chain_hash, payload_digest, verify
from gateway.core.limits import InputLimits
from gateway.errors import InvalidInput, TooLarge
from gateway.policy import PolicyEvalError, load_policies
from gateway.types import Action, AuditEvent

ROOT = Path(__file__).resolve().parents[2]
POLICIES = load_policies(ROOT / "policies")
LIMITS = InputLimits(max_depth=6, max_keys=200, max_string=64)

scalars = (
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.text(max_size=80)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


def _normalise(value: Any) -> Any:
    """What JSON over protobuf Struct makes of a value: every number a float."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return {k: _normalise(v) for k, v in value.items()}


@given(json_objects)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_struct_conversion_round_trips_or_names_a_limit(data: dict[str, Any]) -> None:
    """Any JSON object converts back exactly, or is refused with an error naming a field."""
    s = struct_pb2.Struct()
    s.update(data)
    try:
        out = struct_to_dict(s, "input", LIMITS)
    except (TooLarge, InvalidInput) as exc:
        refused: TooLarge | InvalidInput | None = exc
    else:
        refused = None
        assert out == _normalise(data)
    assert refused is None or refused.field.startswith("input")


@given(st.sampled_from([math.nan, math.inf, -math.inf]))
def test_non_finite_numbers_are_refused(value: float) -> None:
    """NaN and infinities never pass input conversion."""
    s = struct_pb2.Struct()
    s.fields["x"].number_value = value
    with pytest.raises(InvalidInput) as err:
        struct_to_dict(s, "input", LIMITS)
    assert err.value.field == "input.x"


@given(json_objects, json_objects, st.dictionaries(st.text(max_size=5), st.text(max_size=5)))
@settings(max_examples=300)
def test_policies_never_fail_open(
    inp: dict[str, Any], out: dict[str, Any], labels: dict[str, str]
) -> None:
    """Whatever the input and model output, evaluation either decides or raises PolicyEvalError,
    and a held tier's credit decision is never approved automatically."""
    for app in POLICIES.applications.values():
        try:
            cls = app.classify(inp, labels)
            route = app.route(inp, out, cls.tier, labels, app.backend.ref())
        except PolicyEvalError:
            continue
        if app.id == "credit-limit" and cls.tier.name == "high":
            assert route.action is not Action.APPROVE


def _chain(payloads: list[dict[str, Any]]) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    prev = GENESIS
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i, payload in enumerate(payloads, 1):
        ts = t0 + timedelta(seconds=i)
        digest = payload_digest(payload)
        canonical = canonical_bytes(i, ts, f"d{i}", "decision.created", "system", digest, "", "")
        h = chain_hash(prev, canonical)
        events.append(
            AuditEvent(
                i,
                ts,
                f"d{i}",
                "decision.created",
                "system",
                payload,
                digest,
                "",
                "",
                prev,
                h,
                canonical,
            )
        )
        prev = h
    return events


finite_objects = st.dictionaries(
    st.text(max_size=6),
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=20),
    max_size=4,
)


@given(st.lists(finite_objects, min_size=1, max_size=12), st.data())
@settings(max_examples=200)
def test_chain_detects_any_single_change(
    payloads: list[dict[str, Any]], data: st.DataObject
) -> None:
    """An intact chain verifies; flipping a byte of one event's canonical bytes is caught there."""
    events = _chain(payloads)
    assert verify(events).ok
    i = data.draw(st.integers(0, len(events) - 1))
    canonical = bytearray(events[i].canonical)
    j = data.draw(st.integers(0, len(canonical) - 1))
    canonical[j] ^= data.draw(st.integers(1, 255))
    ev = events[i]
    events[i] = AuditEvent(
        ev.seq,
        ev.ts,
        ev.decision_id,
        ev.type,
        ev.actor,
        ev.payload,
        ev.payload_digest,
        ev.trace_id,
        ev.span_id,
        ev.prev_hash,
        ev.hash,
        bytes(canonical),
    )
    result = verify(events)
    assert not result.ok
    assert result.first_bad_seq == ev.seq
