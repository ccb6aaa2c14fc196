"""Property tests: input conversion, policy evaluation and the audit chain under generated data."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api.converters import struct_to_dict
from gateway.audit.chain import GENESIS, canonical_bytes, chain_hash, payload_digest
from gateway.audit.verifier import verify_events
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


# Inputs shaped like real requests: every field the policies in policies/applications.yaml read
# (credit-limit: amount, past_delinquencies; fraud-alert: country_mismatch; marketing-offer: age,
# and the label ``minor``), with values on both sides of each threshold, plus unrelated keys.
# Arbitrary objects alone almost never hold these fields, so nearly every example would stop at
# PolicyEvalError and the property would not be checked at all.
# Hypothesis favours small numbers, so the ranges either side of the threshold are drawn
# separately: about half of all amounts are above 100,000.
amounts = st.one_of(
    st.sampled_from([0, 100_000, 100_000.0, 100_000.01, 100_001, 250_000]),
    st.integers(0, 100_000) | st.floats(0, 100_000),
    st.integers(100_001, 10_000_000),
    st.floats(100_000.01, 10_000_000),
)
scores = st.sampled_from([0.0, 0.05, 0.2, 0.8, 0.95, 1.0]) | st.floats(0, 1)
request_fields = st.fixed_dictionaries(
    {
        "amount": amounts,
        "past_delinquencies": st.integers(0, 6),
        "income": st.integers(0, 500_000),
        "debt_ratio": st.floats(0, 2),
        "country_mismatch": st.booleans(),
        "age": st.integers(10, 90) | st.floats(10, 90),
    }
)
model_fields = st.fixed_dictionaries(
    {"score": scores}, optional={"explanation": st.text(max_size=20)}
)


@st.composite
def _broken(draw: st.DrawFn, fields: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """Well-formed fields with one removed or given a value of the wrong type."""
    data = draw(fields)
    key = draw(st.sampled_from(sorted(data)))
    wrong = draw(st.none() | st.text(max_size=5) | st.lists(st.integers(), max_size=2))
    if draw(st.booleans()):
        del data[key]
    else:
        data[key] = wrong
    return data


def _with_extra(fields: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """The fields among arbitrary other keys; numbers as floats half the time, as over Struct."""
    return st.tuples(json_objects, fields, st.booleans()).map(
        lambda t: _normalise({**t[0], **t[1]}) if t[2] else {**t[0], **t[1]}
    )


inputs = st.one_of(
    _with_extra(request_fields),
    _with_extra(request_fields),
    _with_extra(_broken(request_fields)),
    json_objects,
)
outputs = st.one_of(
    _with_extra(model_fields),
    _with_extra(model_fields),
    _with_extra(_broken(model_fields)),
    json_objects,
)
labels_strategy = st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3) | st.builds(
    lambda extra, minor: {**extra, "minor": minor},
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    st.sampled_from(["true", "false", ""]),
)


def test_policies_never_fail_open() -> None:
    """Realistic requests reach the rules; risky credit, unclear fraud and minors never pass."""
    evaluated: Counter[str] = Counter()

    @given(inputs, outputs, labels_strategy)
    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    def check(inp: dict[str, Any], out: dict[str, Any], labels: dict[str, str]) -> None:
        for app in POLICIES.applications.values():
            try:
                cls = app.classify(inp, labels)
                route = app.route(inp, out, cls.tier, labels, app.backend.ref())
            except PolicyEvalError:
                continue
            evaluated[app.id] += 1
            if app.id == "credit-limit":
                # Classified, so both fields were numbers.
                if inp["amount"] > 100_000 or inp["past_delinquencies"] >= 3:
                    assert cls.tier.name == "high"
                if inp["amount"] > 100_000:
                    evaluated["credit-limit above 100,000"] += 1
                if cls.tier.name == "high":
                    evaluated["credit-limit high"] += 1
                    assert route.action is not Action.APPROVE
            elif app.id == "fraud-alert" and route.action is Action.APPROVE:
                evaluated["fraud-alert approved"] += 1
                assert out["score"] < 0.05 and inp["country_mismatch"] is False
            elif app.id == "marketing-offer":
                age = inp.get("age")
                minor = labels.get("minor") == "true" or (
                    isinstance(age, int | float) and not isinstance(age, bool) and age < 18
                )
                if minor:
                    evaluated["marketing-offer minor"] += 1
                    assert cls.tier.name == "prohibited"

    check()
    minimum = {
        "credit-limit": 120,
        "credit-limit above 100,000": 30,
        "credit-limit high": 60,
        "fraud-alert": 100,
        "fraud-alert approved": 20,
        "marketing-offer": 150,
        "marketing-offer minor": 50,
    }
    short = {k: evaluated[k] for k, n in minimum.items() if evaluated[k] < n}
    assert not short, f"too few generated requests reached the rules: {short}; all: {evaluated}"


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
    assert verify_events(events).ok
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
    result = verify_events(events)
    assert not result.ok
    assert result.first_bad_seq == ev.seq
