"""A third-party OIP backend (a real gRPC server that records) receives only its send_fields."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway._pb.inference import grpc_service_pb2 as pb
from gateway._pb.inference import grpc_service_pb2_grpc as pb_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.testing import create_api_key
from tests.modelrisk_helpers import approve_in_gateway

ROOT = Path(__file__).resolve().parents[2]

POLICY = """
backends:
  - {{name: partner-kyc, kind: oip, target: "127.0.0.1:{port}", model: kyc, version: "7",
     third_party: true, send_fields: [doc_type, country]}}
applications:
  - id: t-kyc
    tier: limited
    backend: partner-kyc
    sensitive_fields: [customer.name, customer.national_id]
    route:
      - {{when: "output.score >= 0.5", action: approve}}
    oip:
      model_name: kyc-check
      inputs:
        - {{name: doc_type, datatype: BYTES, shape: [1], field: doc_type}}
        - {{name: country, datatype: BYTES, shape: [1], field: country}}
        - {{name: customer_name, datatype: BYTES, shape: [1], field: customer.name}}
      outputs:
        - {{name: score, datatype: FP32, shape: [1], field: score}}
"""


class RecordingModel(pb_grpc.GRPCInferenceServiceServicer):
    """An OIP model server that keeps every request's bytes and answers score 0.75."""

    def __init__(self) -> None:
        self.requests: list[pb.ModelInferRequest] = []
        self.metadata: list[dict[str, Any]] = []

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> Any:
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))
        out = pb.ModelInferResponse(model_name=request.model_name, model_version="7")
        tensor = out.outputs.add(name="score", datatype="FP32", shape=[1])
        tensor.contents.fp32_contents.append(0.75)
        return out

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> Any:
        return pb.ModelReadyResponse(ready=request.name == "kyc" and request.version == "7")


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[RecordingModel, int]]:
    server = grpc.aio.server()
    model = RecordingModel()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(model, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield model, port
    finally:
        await server.stop(None)


@pytest.fixture
async def kyc_gateway(
    tmp_path: Path, recorder: tuple[RecordingModel, int]
) -> AsyncIterator[Gateway]:
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    (policies / "kyc.yaml").write_text(POLICY.format(port=recorder[1]))
    settings = Settings(
        grpc_port=0, http_port=0, data_dir=tmp_path / "var", policies=policies, log_level="warning"
    )
    async with Gateway(settings) as gw:
        # A bank's model version must be approved in the inventory to decide automatically.
        await approve_in_gateway(gw, "partner-kyc", "kyc", "7")
        yield gw


async def test_third_party_backend_receives_only_send_fields(
    kyc_gateway: Gateway, recorder: tuple[RecordingModel, int]
) -> None:
    """Decide on a third-party backend: the model gets doc_type and country, nothing else."""
    model, _ = recorder
    key = await create_api_key(kyc_gateway, "t-kyc")
    request = {
        "doc_type": "passport",
        "country": "DE",
        "customer": {"name": "Erika Mustermann", "national_id": "T22000129"},
        "amount": 5000,
    }
    async with AsyncGatewayClient(f"127.0.0.1:{kyc_gateway.grpc_port}", api_key=key) as client:
        decision = await client.decide("t-kyc", request)
    assert decision.status == "APPROVED"
    assert len(model.requests) == 1
    sent = model.requests[0]
    assert sent.model_name == "kyc" and sent.model_version == "7"
    assert [t.name for t in sent.inputs] == ["doc_type", "country"]
    assert [t.contents.bytes_contents[0] for t in sent.inputs] == [b"passport", b"DE"]
    wire = sent.SerializeToString()
    for secret in (b"Erika", b"Mustermann", b"T22000129", b"5000"):
        assert secret not in wire
    assert (await kyc_gateway.readiness())["backend:partner-kyc"] is True
    # The model call carries the decision's trace, so the backend's spans join it.
    assert model.metadata[0]["traceparent"].split("-")[1] == decision.trace_id


async def test_proxy_caller_tensors_outside_send_fields_stay_in_the_gateway(
    kyc_gateway: Gateway, recorder: tuple[RecordingModel, int]
) -> None:
    """Via the OIP proxy, a caller's customer_name tensor is used by policy but never sent."""
    model, _ = recorder
    key = await create_api_key(kyc_gateway, "t-kyc")
    request = pb.ModelInferRequest(model_name="kyc-check", id="req-9")
    for name, value in (("doc_type", b"id_card"), ("country", b"FR"), ("customer_name", b"Jean")):
        tensor = request.inputs.add(name=name, datatype="BYTES", shape=[1])
        tensor.contents.bytes_contents.append(value)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{kyc_gateway.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        response = await stub.ModelInfer(
            request, metadata=(("authorization", f"Bearer {key}"),), timeout=5
        )
    assert response.id == "req-9" and response.outputs[0].name == "score"
    assert response.raw_output_contents[0] == b"\x00\x00\x40\x3f"  # 0.75 as little-endian FP32
    assert b"Jean" not in model.requests[0].SerializeToString()
