"""Hostile and malformed requests get precise errors, write nothing, and the server goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError

DECIDE = "/hitl.gateway.v1.DecisionGateway/Decide"


@pytest.fixture
async def raw(gateway: Gateway, api_key: str) -> AsyncIterator[grpc.aio.UnaryUnaryMultiCallable]:
    """Decide over a channel that sends bytes as they are, so tests can send invalid protobuf."""
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{gateway.grpc_port}",
        options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
    )
    call = channel.unary_unary(DECIDE)
    yield call
    await channel.close()


async def _count(gateway: Gateway) -> int:
    return len(await gateway.store.audit_events(limit=100_000))


async def _refused(
    raw: grpc.aio.UnaryUnaryMultiCallable, key: str, body: bytes
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw(body, metadata=(("authorization", f"Bearer {key}"),), timeout=30)
    return err.value


def _nested(depth: int) -> bytes:
    req = pb.DecideRequest(application="t-echo")
    node = req.input
    for _ in range(depth):
        node = node.fields["a"].struct_value
    return req.SerializeToString()


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (pb.DecideRequest(application="t-echo").SerializeToString(), "INVALID_ARGUMENT", "input"),
        (b"", "INVALID_ARGUMENT", "application"),
        (b"\x0a\x05t-e", "INVALID_ARGUMENT", "malformed"),
        (b"\x08\x01", "INVALID_ARGUMENT", "application"),
        (_nested(1000), "RESOURCE_EXHAUSTED", "nested too deeply"),
        (_nested(20), "RESOURCE_EXHAUSTED", "nested deeper than 16"),
    ],
    ids=["missing-input", "empty", "truncated", "wrong-wire-type", "depth-1000", "depth-20"],
)
async def test_malformed_requests_are_refused(
    gateway: Gateway,
    raw: grpc.aio.UnaryUnaryMultiCallable,
    api_key: str,
    body: bytes,
    code: str,
    fragment: str,
) -> None:
    """Each malformed request gets its status with a message naming the problem."""
    before = await _count(gateway)
    err = await _refused(raw, api_key, body)
    assert err.code().name == code
    assert fragment in (err.details() or "")
    assert await _count(gateway) == before


async def test_non_utf8_key_is_invalid_argument(
    gateway: Gateway, raw: grpc.aio.UnaryUnaryMultiCallable, api_key: str
) -> None:
    """A struct key that is not UTF-8 is refused as malformed, not as an internal error."""
    req = pb.DecideRequest(application="t-echo")
    req.input.fields["ab"].number_value = 1
    body = req.SerializeToString().replace(b"ab", b"\xff\xfe")
    err = await _refused(raw, api_key, body)
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "UTF-8" in (err.details() or "")


async def test_ten_megabyte_input_is_resource_exhausted(
    gateway: Gateway, raw: grpc.aio.UnaryUnaryMultiCallable, api_key: str
) -> None:
    """A 10 MB request exceeds the message limit and is refused before parsing."""
    req = pb.DecideRequest(application="t-echo")
    req.input.fields["blob"].string_value = "x" * (10 * 1024 * 1024)
    err = await _refused(raw, api_key, req.SerializeToString())
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (err.details() or "")


async def test_hundred_thousand_keys_is_resource_exhausted(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """An input with 100,000 keys is refused naming the input and the limit."""
    before = await _count(gateway)
    with pytest.raises(GatewayCallError) as err:
        await client.decide("t-echo", {f"k{i}": 1 for i in range(100_000)})
    assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "input" in err.value.details and "10000 keys" in err.value.details
    assert await _count(gateway) == before


async def test_long_string_names_the_field(client: AsyncGatewayClient) -> None:
    """An oversized string value is refused naming its field path."""
    with pytest.raises(GatewayCallError) as err:
        await client.decide("t-echo", {"customer": {"note": "x" * 70_000}})
    assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "input.customer.note" in err.value.details


async def test_unknown_application(client: AsyncGatewayClient) -> None:
    """An application the policies do not name is INVALID_ARGUMENT naming it."""
    with pytest.raises(GatewayCallError) as err:
        await client.decide("no-such-app", {"x": 1})
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "no-such-app" in err.value.details


async def test_negative_wait(
    gateway: Gateway, raw: grpc.aio.UnaryUnaryMultiCallable, api_key: str
) -> None:
    """A negative wait is refused naming the wait field."""
    req = pb.DecideRequest(application="t-echo")
    req.input.fields["score"].number_value = 0.5
    req.wait.seconds = -5
    err = await _refused(raw, api_key, req.SerializeToString())
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "wait" in (err.details() or "")


async def test_wrong_input_types_reach_the_model_and_fail_closed(
    client: AsyncGatewayClient,
) -> None:
    """Input of the wrong type for the model holds the decision, naming the field in the reason."""
    d = await client.decide(
        "credit-limit", {"income": "lots", "debt_ratio": 0.1, "past_delinquencies": 0, "amount": 1}
    )
    assert d.status.value == "PENDING_REVIEW"
    assert any("income" in r for r in d.reasons)


async def test_server_keeps_serving_after_bad_input(
    gateway: Gateway,
    raw: grpc.aio.UnaryUnaryMultiCallable,
    api_key: str,
    client: AsyncGatewayClient,
) -> None:
    """After a burst of hostile requests a normal decision still succeeds."""
    for body in (_nested(1000), b"\xff" * 100, b"\x0a\xff\xff\xff\xff\x0f"):
        await _refused(raw, api_key, body)
    d = await client.decide("t-echo", {"score": 0.9})
    assert d.status.value == "APPROVED"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
async def test_non_finite_number_is_invalid_argument(
    gateway: Gateway, client: AsyncGatewayClient, value: float
) -> None:
    """NaN and infinities, which JSON cannot hold, are refused naming the field."""
    before = await _count(gateway)
    with pytest.raises(GatewayCallError) as err:
        await client.decide("t-echo", {"score": 0.5, "amount": value})
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "input.amount" in err.value.details
    assert await _count(gateway) == before
