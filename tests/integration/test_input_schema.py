"""An application's JSON Schema refuses mismatching input over gRPC, naming the field."""

from __future__ import annotations

import grpc
import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.types import Status


async def test_input_breaking_the_schema_is_invalid_argument_naming_the_field(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """A wrong type deep in the input is INVALID_ARGUMENT naming it, and nothing is stored."""
    before = len(await gateway.store.audit_events(limit=1000))
    with pytest.raises(GatewayCallError) as err:
        await client.decide("t-schema", {"score": 0.9, "customer": {"age": "forty"}})
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details == "input.customer.age: must be of type 'integer'"
    with pytest.raises(GatewayCallError, match="'customer' is a required property"):
        await client.decide("t-schema", {"score": 0.9})
    assert len(await gateway.store.audit_events(limit=1000)) == before


async def test_input_matching_the_schema_is_decided(client: AsyncGatewayClient) -> None:
    """A whole number sent as a protobuf double still counts as an integer."""
    d = await client.decide("t-schema", {"score": 0.9, "customer": {"age": 30}})
    assert d.status is Status.APPROVED
