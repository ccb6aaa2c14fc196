"""Callers are authenticated by API key and confined to their applications."""

from __future__ import annotations

import grpc
import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.testing import create_api_key


async def _code(client: AsyncGatewayClient, app: str = "t-echo") -> grpc.StatusCode:
    with pytest.raises(GatewayCallError) as err:
        await client.decide(app, {"score": 0.9})
    return err.value.code


@pytest.mark.parametrize(
    "key",
    ["", "hitl_abc", "hitl_000000000000_notthesecret", "Basic xyz", "hitl_" + "a" * 300],
)
async def test_missing_or_wrong_key_is_unauthenticated(gateway: Gateway, key: str) -> None:
    """A call without a valid key is UNAUTHENTICATED."""
    async with AsyncGatewayClient(f"127.0.0.1:{gateway.grpc_port}", api_key=key) as c:
        assert await _code(c) is grpc.StatusCode.UNAUTHENTICATED


async def test_key_for_another_application_is_denied(gateway: Gateway) -> None:
    """A key bound to one application may not decide, read or watch for another."""
    echo_key = await create_api_key(gateway, "t-echo")
    credit_key = await create_api_key(gateway, "credit-limit")
    target = f"127.0.0.1:{gateway.grpc_port}"
    async with (
        AsyncGatewayClient(target, api_key=echo_key) as echo,
        AsyncGatewayClient(target, api_key=credit_key) as credit,
    ):
        assert await _code(credit, "t-echo") is grpc.StatusCode.PERMISSION_DENIED
        d = await echo.decide("t-echo", {"score": 0.5})
        with pytest.raises(GatewayCallError) as err:
            await credit.get(d.id)
        assert err.value.code is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(GatewayCallError) as err:
            async for _ in credit.watch(d.id):
                pass
        assert err.value.code is grpc.StatusCode.PERMISSION_DENIED


async def test_revoked_key_stops_working(gateway: Gateway) -> None:
    """A revoked key is refused once it is out of the authenticator's cache."""
    key = await create_api_key(gateway, "t-echo")
    key_id = key.split("_")[1]
    assert await gateway.store.revoke_api_key(key_id)
    async with AsyncGatewayClient(f"127.0.0.1:{gateway.grpc_port}", api_key=key) as c:
        assert await _code(c) is grpc.StatusCode.UNAUTHENTICATED


async def test_unknown_decision_is_not_found(client: AsyncGatewayClient) -> None:
    """GetDecision of an id that does not exist is NOT_FOUND."""
    with pytest.raises(GatewayCallError) as err:
        await client.get("0" * 32)
    assert err.value.code is grpc.StatusCode.NOT_FOUND
