"""The digest an idempotency key is bound to, and the validation of ``requested_by``."""

from __future__ import annotations

import hashlib

import pytest

from gateway.core.command import DecideCommand
from gateway.core.idempotency import request_digest
from gateway.core.limits import InputLimits, requester
from gateway.errors import InvalidInput, TooLarge

BASE = DecideCommand(
    application="credit-limit",
    input={"amount": 5000.0, "customer": {"id": "c-1", "tags": ["a", None, True]}},
    subject_ref="cust-1",
    idempotency_key="req-1",
    labels={"channel": "web", "branch": "north"},
    requested_by="maria",
)


def _with(**changes: object) -> DecideCommand:
    fields = {f: getattr(BASE, f) for f in BASE.__dataclass_fields__}
    return DecideCommand(**{**fields, **changes})


def test_the_encoding_is_pinned() -> None:
    """SHA-256 over sorted, compact JSON of the five parts: stored digests rely on it."""
    cmd = DecideCommand(application="a", input={"x": 1.0, "b": 0.5}, labels={"k": "v"})
    canonical = (
        b'{"application":"a","input":{"b":0.5,"x":1},"labels":{"k":"v"},'
        b'"requested_by":"","subject_ref":""}'
    )
    assert request_digest(cmd) == "sha256:" + hashlib.sha256(canonical).hexdigest()


def test_the_same_request_in_another_key_order_has_the_same_digest() -> None:
    """Key order in input and labels does not matter; neither do the key and the wait."""
    reordered = _with(
        input={"customer": {"tags": ["a", None, True], "id": "c-1"}, "amount": 5000.0},
        labels={"branch": "north", "channel": "web"},
        idempotency_key="another-key",
        wait=30.0,
    )
    assert request_digest(reordered) == request_digest(BASE)


@pytest.mark.parametrize(
    "change",
    [
        {"application": "fraud-alert"},
        {"input": {"amount": 5001.0, "customer": {"id": "c-1", "tags": ["a", None, True]}}},
        {"input": {"amount": 5000.0, "customer": {"id": "c-2", "tags": ["a", None, True]}}},
        {"input": {"amount": 5000.0, "customer": {"id": "c-1", "tags": ["a", None]}}},
        {"subject_ref": "cust-2"},
        {"subject_ref": ""},
        {"labels": {"channel": "branch", "branch": "north"}},
        {"labels": {"channel": "web"}},
        {"requested_by": "tom"},
        {"requested_by": ""},
    ],
)
def test_any_other_part_changes_the_digest(change: dict[str, object]) -> None:
    """Application, input, subject, labels and requester each change the digest."""
    assert request_digest(_with(**change)) != request_digest(BASE)


def test_parts_cannot_run_into_each_other() -> None:
    """Moving characters from the subject into the requester gives another digest."""
    one = _with(subject_ref="cust-1m", requested_by="aria")
    two = _with(subject_ref="cust-1", requested_by="maria")
    assert request_digest(one) != request_digest(two)


def test_numbers_compare_as_json_numbers() -> None:
    """5.0 (a protobuf Struct's double) and 5 (an INT64 tensor) are one number; 5.5 is another."""
    as_float = _with(input={"n": 5.0, "xs": [1.0, 2.0]})
    as_int = _with(input={"n": 5, "xs": [1, 2]})
    assert request_digest(as_float) == request_digest(as_int)
    assert request_digest(_with(input={"n": 5.5, "xs": [1, 2]})) != request_digest(as_int)
    assert request_digest(_with(input={"n": True, "xs": [1, 2]})) != request_digest(as_int)


def test_requested_by_is_stripped() -> None:
    """Surrounding spaces are removed; an empty or blank value means no requester."""
    limits = InputLimits()
    assert requester("  maria.officer  ", "requested_by", limits) == "maria.officer"
    assert requester("   ", "requested_by", limits) == ""
    assert requester("", "requested_by", limits) == ""
    assert requester("Jürgen Müller", "requested_by", limits) == "Jürgen Müller"


@pytest.mark.parametrize("value", ["maria\nadmin", "maria\x00", "tab\there", "zero\u200bwidth"])
def test_requested_by_must_be_printable(value: str) -> None:
    """Line breaks, control and invisible characters are refused, naming the field."""
    with pytest.raises(InvalidInput) as caught:
        requester(value, "requested_by", InputLimits())
    assert caught.value.field == "requested_by"


def test_requested_by_has_a_length_limit() -> None:
    """A requester longer than the id limit is refused, naming the field."""
    limits = InputLimits(max_id_length=8)
    assert requester("x" * 8, "requested_by", limits) == "x" * 8
    with pytest.raises(TooLarge) as caught:
        requester("x" * 9, "requested_by", limits)
    assert caught.value.field == "requested_by"
