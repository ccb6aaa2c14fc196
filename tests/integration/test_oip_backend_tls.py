"""TLS from the gateway to an Open Inference Protocol backend (``tls: true``, ``tls_ca``).

The model server is the benchmark's linear model (``score = 0.5 * x1 + 0.4 * x2``) served
in-process by grpc.aio on a loopback port, over TLS with a certificate from a throwaway CA.
"""

from __future__ import annotations

import shutil
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from bench.oip_model_server import LinearModel
from gateway._pb.inference import grpc_service_pb2 as pb
from gateway._pb.inference import grpc_service_pb2_grpc as pb_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.config import Settings
from gateway.policy import load_policies
from gateway.testing import create_api_key
from gateway.types import Status
from tests.integration.tls_certs import TestCA
from tests.modelrisk_helpers import approve_in_gateway

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tls-scorer"
# The backend's deadline; a failing handshake must be given up within it, not waited on.
BACKEND_TIMEOUT = 1.0

POLICY = """
backends:
  - name: secure-scorer
    kind: oip
    target: "{target}"
    model: scorer
    version: "1"
    timeout: {timeout}s
{tls}
applications:
  - id: t-tls
    tier: limited
    backend: secure-scorer
    route:
      - {{when: "output.score >= 0.8", action: approve}}
    on_model_error: review
    oip:
      model_name: {model}
      inputs:
        - {{name: features, datatype: FP64, shape: [1, 2], field: features}}
      outputs:
        - {{name: predict, datatype: FP64, shape: [1, 1], field: score}}
  - id: t-tls-strict
    tier: limited
    backend: secure-scorer
    route:
      - {{when: "output.score >= 0.8", action: approve}}
    on_model_error: reject
    oip:
      model_name: {model}-strict
      inputs:
        - {{name: features, datatype: FP64, shape: [1, 2], field: features}}
      outputs:
        - {{name: predict, datatype: FP64, shape: [1, 1], field: score}}
"""


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path, "backend-ca")


@asynccontextmanager
async def model_server(ca: TestCA | None) -> AsyncIterator[int]:
    """The linear model on 127.0.0.1, over TLS with ``ca``'s certificate, or plaintext; its port."""
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(LinearModel(), server)
    if ca is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        cert = ca.server_cert()
        creds = grpc.ssl_server_credentials([(cert.key_pem, cert.cert_pem)])
        port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


def write_policies(tmp_path: Path, target: str, tls: dict[str, str]) -> Path:
    """The shipped policies plus an oip backend at ``target`` with the given TLS keys."""
    policies = tmp_path / "policies"
    shutil.rmtree(policies, ignore_errors=True)
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    tls_lines = "".join(f"    {key}: {value}\n" for key, value in tls.items())
    text = POLICY.format(target=target, timeout=BACKEND_TIMEOUT, tls=tls_lines, model=MODEL)
    (policies / "tls-backend.yaml").write_text(text)
    return policies


@asynccontextmanager
async def gateway_for(tmp_path: Path, target: str, tls: dict[str, str]) -> AsyncIterator[Gateway]:
    settings = Settings(
        grpc_port=0,
        http_port=0,
        data_dir=tmp_path / "var",
        policies=write_policies(tmp_path, target, tls),
        log_level="warning",
        shutdown_grace=1.0,
    )
    async with Gateway(settings) as gw:
        # A bank's model version must be approved in the inventory to decide automatically.
        await approve_in_gateway(gw, "secure-scorer", "scorer", "1")
        yield gw


def infer_request(model: str, x1: float, x2: float) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="features", datatype="FP64", shape=[1, 2])
    tensor.contents.fp64_contents.extend([x1, x2])
    return request


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_backend_with_its_ca_serves_decide_and_model_infer(
    tmp_path: Path, ca: TestCA, host: str
) -> None:
    """With tls_ca naming the server's CA, Decide and ModelInfer are approved with its output."""
    async with (
        model_server(ca) as port,
        gateway_for(tmp_path, f"{host}:{port}", {"tls": "true", "tls_ca": str(ca.ca_file)}) as gw,
    ):
        key = await create_api_key(gw, "t-tls")
        async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as client:
            decision = await client.decide("t-tls", {"features": [1.0, 1.0]})
        assert decision.status is Status.APPROVED and decision.rule == "route[0]"
        assert decision.model_output == {"score": pytest.approx(0.9)}

        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
            response = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                infer_request(MODEL, 2.0, 0.0),
                metadata=(("authorization", f"Bearer {key}"),),
                timeout=5,
            )
        (score,) = struct.unpack("<d", response.raw_output_contents[0])
        assert response.outputs[0].name == "predict" and score == pytest.approx(1.0)
        assert (await gw.readiness())["backend:secure-scorer"] is True


async def _assert_fails_closed(gw: Gateway) -> None:
    """Both applications follow on_model_error within the backend's deadline."""
    key = await create_api_key(gw, "t-tls", "t-tls-strict")
    async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key, timeout=10) as client:
        started = time.monotonic()
        held = await client.decide("t-tls", {"features": [1.0, 1.0]})
        elapsed = time.monotonic() - started
        assert held.status is Status.PENDING_REVIEW and held.rule == "on_model_error"
        assert held.model_output is None
        (reason,) = held.reasons
        # gRPC reports the refused TLS handshake as UNAVAILABLE, with the handshake named.
        assert reason.startswith("model error: secure-scorer: UNAVAILABLE"), reason
        assert "handshake failed" in reason.lower(), reason
        # Bounded by the backend's deadline, far below the caller's 10 s.
        assert elapsed < BACKEND_TIMEOUT + 1.5

        with pytest.raises(GatewayCallError) as err:
            await client.decide("t-tls-strict", {"features": [1.0, 1.0]})
        assert err.value.code is grpc.StatusCode.UNAVAILABLE and err.value.decision_id
        rejected = await client.get(err.value.decision_id)
        assert rejected.status is Status.REJECTED and rejected.rule == "on_model_error"
    assert (await gw.readiness())["backend:secure-scorer"] is False


async def test_backend_signed_by_another_ca_fails_closed(tmp_path: Path, ca: TestCA) -> None:
    """With tls_ca naming a different CA, the handshake fails and on_model_error applies."""
    stranger = TestCA(tmp_path, "other-ca")
    tls = {"tls": "true", "tls_ca": str(stranger.ca_file)}
    async with model_server(ca) as port, gateway_for(tmp_path, f"127.0.0.1:{port}", tls) as gw:
        await _assert_fails_closed(gw)


async def test_tls_to_a_plaintext_backend_fails_closed(tmp_path: Path, ca: TestCA) -> None:
    """With tls: true against a plaintext server, no call gets through; on_model_error applies."""
    tls = {"tls": "true", "tls_ca": str(ca.ca_file)}
    async with model_server(None) as port, gateway_for(tmp_path, f"127.0.0.1:{port}", tls) as gw:
        await _assert_fails_closed(gw)


async def test_tls_without_ca_uses_default_roots_which_do_not_trust_a_private_ca(
    tmp_path: Path, ca: TestCA
) -> None:
    """tls: true alone loads (gRPC's default roots), which refuse a private CA's certificate."""
    async with model_server(ca) as port:
        target = f"127.0.0.1:{port}"
        policies = load_policies(write_policies(tmp_path, target, {"tls": "true"}))
        spec = policies.backends["secure-scorer"]
        assert spec.tls is True and spec.tls_ca is None
        async with gateway_for(tmp_path, target, {"tls": "true"}) as gw:
            await _assert_fails_closed(gw)
