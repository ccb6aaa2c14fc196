"""Only application keys decide: auditor and admin keys take no applications and, even when a
stored record names some, are refused by every DecisionGateway and inference method."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway._pb.inference import grpc_service_pb2 as oip_pb
from gateway._pb.inference import grpc_service_pb2_grpc as oip_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.core.api_keys import ApiKeyAdmin
from gateway.core.auth import certificate_identity, new_key
from gateway.testing import create_api_key
from tests.integration.oip_app import policies_dir, settings
from tests.integration.serverproc import cli
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "policies_dir", "settings"]


def test_cli_refuses_applications_for_keys_that_do_not_decide(
    tmp_path: Path, policies_dir: Path
) -> None:
    """`keys create --role auditor|admin --app …` fails with exit 2 and prints no key."""
    base = ("keys", "create", "--data-dir", str(tmp_path / "var"), "--policies", str(policies_dir))
    for role in ("auditor", "admin"):
        for extra in ((), ("--client-cn", "reporting")):
            done = cli(*base, "--role", role, "--app", "credit-limit", *extra)
            assert done.returncode == 2, done.stderr
            assert "takes no applications" in done.stderr
            assert done.stdout == ""


async def test_core_refuses_applications_for_keys_that_do_not_decide(gateway: Gateway) -> None:
    """Making or storing an auditor or admin key record that names applications raises."""
    for role in ("auditor", "admin"):
        with pytest.raises(ValueError, match="takes no applications"):
            new_key(("credit-limit",), role=role)
        with pytest.raises(ValueError, match="takes no applications"):
            certificate_identity("reporting", ("credit-limit",), role=role)
        _, record = new_key((), role=role)
        with pytest.raises(ValueError, match="takes no applications"):
            await ApiKeyAdmin(gateway.store).create(
                replace(record, applications=("credit-limit",)), actor="test"
            )
        assert await gateway.store.get_api_key(record.key_id) is None


async def test_stored_auditor_key_with_applications_is_denied_every_decision_method(
    gateway: Gateway,
) -> None:
    """An auditor key whose stored record names applications is PERMISSION_DENIED on Decide,
    GetDecision, WatchDecision, ModelInfer, ModelMetadata and ModelReady."""
    target = f"127.0.0.1:{gateway.grpc_port}"
    app_token = await create_api_key(gateway, "t-echo", "t-oip")
    token, record = new_key((), role="auditor")
    # As a version that did not check roles against applications stored it.
    await gateway.store.add_api_key(replace(record, applications=("t-echo", "t-oip")))
    md = (("authorization", f"Bearer {token}"),)
    app_md = (("authorization", f"Bearer {app_token}"),)
    model = oip_pb.ModelMetadataRequest(name="t-oip-model")
    infer = oip_pb.ModelInferRequest(model_name="t-oip-model")
    infer.inputs.add(name="score", datatype="FP64", shape=[1]).contents.fp64_contents.append(0.9)

    async with (
        AsyncGatewayClient(target, api_key=app_token) as app,
        AsyncGatewayClient(target, api_key=token) as auditor,
        grpc.aio.insecure_channel(target) as channel,
    ):
        oip = oip_grpc.GRPCInferenceServiceStub(channel)
        held = await app.decide("t-echo", {"score": 0.5, "customer": {"name": "Ann"}})
        # The same calls with the application's key answer: the refusals are about the role.
        assert (await oip.ModelMetadata(model, metadata=app_md)).name == "t-oip-model"
        assert (
            await oip.ModelReady(oip_pb.ModelReadyRequest(name="t-oip-model"), metadata=app_md)
        ).ready

        async def watch() -> None:
            async for _ in auditor.watch(held.id):
                pass

        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "Decide": lambda: auditor.decide("t-echo", {"score": 0.9}),
            "GetDecision": lambda: auditor.get(held.id),
            "WatchDecision": watch,
        }
        for name, call in calls.items():
            with pytest.raises(GatewayCallError) as err:
                await call()
            assert err.value.code is grpc.StatusCode.PERMISSION_DENIED, name
        oip_calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "ModelInfer": lambda: oip.ModelInfer(infer, metadata=md),
            "ModelMetadata": lambda: oip.ModelMetadata(model, metadata=md),
            "ModelReady": lambda: oip.ModelReady(
                oip_pb.ModelReadyRequest(name="t-oip-model"), metadata=md
            ),
        }
        for name, call in oip_calls.items():
            with pytest.raises(grpc.aio.AioRpcError) as rpc_err:
                await call()
            assert rpc_err.value.code() is grpc.StatusCode.PERMISSION_DENIED, name
