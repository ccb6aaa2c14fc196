"""Small core pieces: masking, notification, key parsing, input conversion."""

from __future__ import annotations

import asyncio

import pytest

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway.api.converters import decide_command
from gateway.core.auth import new_key, parse_bearer
from gateway.core.limits import InputLimits
from gateway.core.masking import mask
from gateway.core.notifier import Notifier
from gateway.errors import InvalidInput, TooLarge, Unauthenticated
from tests.audit_builders import audit_decision


def test_mask_replaces_nested_paths_without_touching_the_original() -> None:
    """Masking copies only the dicts on the path and leaves the input unchanged."""
    data = {"customer": {"name": "A", "age": 3}, "amount": 1}
    out = mask(data, ("customer.name", "missing.path", "amount"))
    assert out == {"customer": {"name": "***", "age": 3}, "amount": "***"}
    assert data == {"customer": {"name": "A", "age": 3}, "amount": 1}


async def test_notifier_delivers_to_subscribers_only_while_subscribed() -> None:
    """A subscriber receives changes of its decision until its block ends."""
    notifier = Notifier()
    d = audit_decision(1)
    with notifier.subscribe(d.id) as queue:
        notifier.publish(d)
        assert (await asyncio.wait_for(queue.get(), 1)).id == d.id
        assert notifier.waiting() == 1
    notifier.publish(d)
    assert notifier.waiting() == 0


def test_new_key_round_trips_through_bearer_parsing() -> None:
    """A created key parses back to its id, and its secret is not stored in clear."""
    token, record = new_key(("credit-limit",))
    key_id, secret = parse_bearer(f"Bearer {token}")
    assert key_id == record.key_id
    assert secret not in record.secret_hash


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer abc", "Token hitl_a_b", "Bearer hitl__x"]
)
def test_bad_bearer_headers(header: str | None) -> None:
    """Anything but 'Bearer hitl_<id>_<secret>' is unauthenticated."""
    with pytest.raises(Unauthenticated):
        parse_bearer(header)


def test_decide_command_converts_struct_to_plain_python() -> None:
    """Struct values become plain dicts, lists, floats, strings, bools and None."""
    req = pb.DecideRequest(application="a", labels={"k": "v"})
    req.input.update({"n": 1, "s": "x", "b": True, "z": None, "l": [1, {"a": "b"}]})
    req.wait.FromMilliseconds(1500)
    cmd = decide_command(req, InputLimits())
    assert cmd.input == {"n": 1.0, "s": "x", "b": True, "z": None, "l": [1.0, {"a": "b"}]}
    assert cmd.wait == 1.5 and cmd.labels == {"k": "v"}


@pytest.mark.parametrize(
    ("mutate", "error", "field"),
    [
        (lambda r: r.ClearField("application"), InvalidInput, "application"),
        (lambda r: r.ClearField("input"), InvalidInput, "input"),
        (lambda r: setattr(r, "subject_ref", "s" * 300), TooLarge, "subject_ref"),
        (lambda r: r.wait.FromSeconds(10_000), InvalidInput, "wait"),
        (lambda r: r.input.update({"l": _deep(18)}), TooLarge, "input.l"),
        (lambda r: r.labels.update({str(i): "x" for i in range(100)}), TooLarge, "labels"),
    ],
)
def test_decide_command_errors_name_the_field(mutate: object, error: type, field: str) -> None:
    """Each invalid request field is refused with the field's path."""
    req = pb.DecideRequest(application="a")
    req.input.update({"x": 1})
    mutate(req)  # type: ignore[operator]
    with pytest.raises(error) as err:
        decide_command(req, InputLimits())
    assert err.value.field.startswith(field)


def _deep(n: int) -> object:
    return [1] if n == 0 else [_deep(n - 1)]
