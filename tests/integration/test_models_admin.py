"""The model inventory RPCs of hitl.admin.v1.AdminService over a real gRPC server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import orjson
import pytest

from gateway._pb.hitl.admin.v1 import admin_pb2 as pb
from gateway._pb.hitl.admin.v1 import admin_pb2_grpc
from gateway.app import Gateway
from gateway.core.auth import new_key
from gateway.modelrisk.record import ModelKey

Metadata = tuple[tuple[str, str], ...]
KEY = pb.ModelKey(backend="echo", name="echo", version="7")


async def _md(gateway: Gateway, role: str) -> tuple[Metadata, str]:
    token, record = new_key((), role=role) if role != "app" else new_key(("t-echo",), role=role)
    await gateway.store.add_api_key(record)
    return (("authorization", f"Bearer {token}"),), record.key_id


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[admin_pb2_grpc.AdminServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield admin_pb2_grpc.AdminServiceStub(channel)


def _register() -> pb.ModelRegisterRequest:
    return pb.ModelRegisterRequest(
        key=KEY, owner="olga", intended_use="demo", max_tier="limited", justification="new"
    )


def _move(transition: pb.ModelTransition.ValueType, **fields: str) -> pb.ModelTransitionRequest:
    return pb.ModelTransitionRequest(
        key=KEY, transition=transition, justification="because", **fields
    )


@pytest.mark.parametrize("role", ["app", "auditor"])
async def test_only_admin_keys_may_call_the_inventory_rpcs(
    gateway: Gateway, stub: admin_pb2_grpc.AdminServiceStub, role: str
) -> None:
    """App and auditor keys get PERMISSION_DENIED on every model RPC, and nothing is stored."""
    md, _ = await _md(gateway, role)
    calls = [
        (stub.RegisterModel, _register()),
        (stub.GetModel, pb.ModelGetRequest(key=KEY)),
        (stub.ListModels, pb.ModelListRequest()),
        (stub.TransitionModel, _move(pb.MODEL_TRANSITION_RETIRE)),
        (stub.ModelHistory, pb.ModelHistoryRequest(key=KEY)),
    ]
    for rpc, request in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await rpc(request, metadata=md)  # type: ignore[operator]
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED, rpc
    assert await gateway.store.get_model(ModelKey("echo", "echo", "7")) is None


async def test_an_admin_key_moves_a_model_through_its_lifecycle(
    gateway: Gateway, stub: admin_pb2_grpc.AdminServiceStub
) -> None:
    """Register, validate and approve through the API as app:<key id>; the owner approving is
    PERMISSION_DENIED, a wrong move FAILED_PRECONDITION, a missing field INVALID_ARGUMENT naming
    it, an unknown key NOT_FOUND; history returns the events with their payloads."""
    md, key_id = await _md(gateway, "admin")
    made = await stub.RegisterModel(_register(), metadata=md)
    assert made.status == pb.MODEL_STATUS_REGISTERED and made.updated_by == f"app:{key_id}"

    async def refused(request: pb.ModelTransitionRequest) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.TransitionModel(request, metadata=md)
        return caught.value

    err = await refused(_move(pb.MODEL_TRANSITION_APPROVE, approver="ann"))
    assert err.code() is grpc.StatusCode.FAILED_PRECONDITION and "is registered" in str(
        err.details()
    )
    err = await refused(_move(pb.MODEL_TRANSITION_VALIDATE, validator="vic"))
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "validation_expires_at" in str(err.details())
    validate = _move(pb.MODEL_TRANSITION_VALIDATE, validator="vic")
    validate.validation_expires_at.FromDatetime(datetime.now(UTC) + timedelta(days=90))
    validated = await stub.TransitionModel(validate, metadata=md)
    assert validated.status == pb.MODEL_STATUS_VALIDATED and validated.validator == "vic"
    err = await refused(_move(pb.MODEL_TRANSITION_APPROVE, approver=" Olga"))
    assert err.code() is grpc.StatusCode.PERMISSION_DENIED
    approved = await stub.TransitionModel(
        _move(pb.MODEL_TRANSITION_APPROVE, approver="ann"), metadata=md
    )
    assert approved.status == pb.MODEL_STATUS_APPROVED

    got = await stub.GetModel(pb.ModelGetRequest(key=KEY), metadata=md)
    assert got == approved
    listed = await stub.ListModels(pb.ModelListRequest(), metadata=md)
    assert approved in listed.models
    history = await stub.ModelHistory(pb.ModelHistoryRequest(key=KEY), metadata=md)
    assert [e.type for e in history.events] == [
        "model.registered",
        "model.validated",
        "model.approved",
    ]
    assert orjson.loads(history.events[2].payload_json)["approver"] == "ann"
    unknown = pb.ModelGetRequest(key=pb.ModelKey(backend="echo", name="echo", version="8"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetModel(unknown, metadata=md)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert (await gateway.audit.verify()).result.ok
