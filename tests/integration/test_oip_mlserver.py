"""A real Seldon MLServer behind the gateway, called through the gateway by the real tritonclient.

MLServer and tritonclient run in their own virtual environment (``.venv-oip``, see
``oip_tools/venv.py``), created on first use.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from gateway._pb.inference import grpc_service_pb2 as pb
from gateway._pb.inference import grpc_service_pb2_grpc as pb_grpc
from gateway.app import Gateway
from gateway.config import Settings
from gateway.core.reviews import Reviewer
from gateway.testing import create_api_key
from gateway.types import Status, TaskKind, Verdict
from tests.integration.oip_tools import venv
from tests.integration.oip_tools.harness import ModelServer, infer, infer_request, triton_call
from tests.modelrisk_helpers import approve_in_gateway

# The first test here creates .venv-oip when it is missing (a pip install of MLServer, sklearn
# and tritonclient: minutes on a slow network), inside the suite's per-test timeout.
pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
MODEL = "credit-scorer-v2"

POLICY = """
backends:
  - name: mlserver
    kind: oip
    target: "{target}"
    model: scorer
    version: "1"
    timeout: 1s
    send_fields: [features]
    circuit: {{failures: 2, cooldown: 1s}}
applications:
  - id: t-oip
    tier: limited
    backend: mlserver
    escalate:
      - {{when: "input.amount > 100000", tier: high, reason: "large amount"}}
    route:
      - {{when: "tier != 'high' && output.score >= 0.8", action: approve}}
      - {{when: "output.score < 0.2", action: reject, reason: "score below floor"}}
    on_model_error: review
    oip:
      model_name: {model}
      inputs:
        - {{name: features, datatype: FP64, shape: [1, 2], field: features}}
        - {{name: amount, datatype: FP64, shape: [1], field: amount}}
      outputs:
        - {{name: predict, datatype: FP64, shape: [1, 1], field: score}}
  - id: t-oip-reject
    tier: limited
    backend: mlserver
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


@pytest.fixture(scope="session")
def oip_python() -> Path:
    return venv.ensure()


@pytest.fixture
def model_server(oip_python: Path, tmp_path: Path) -> Iterator[ModelServer]:
    server = ModelServer(oip_python, tmp_path / "models")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def oip_gateway(tmp_path: Path, model_server: ModelServer) -> AsyncIterator[Gateway]:
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    (policies / "oip.yaml").write_text(POLICY.format(target=model_server.target, model=MODEL))
    settings = Settings(
        grpc_port=0,
        http_port=0,
        data_dir=tmp_path / "var",
        policies=policies,
        log_level="warning",
        shutdown_grace=1.0,
    )
    await model_server.wait_ready()
    async with Gateway(settings) as gw:
        # A bank's model version must be approved in the inventory to decide automatically.
        await approve_in_gateway(gw, "mlserver", "scorer", "1")
        yield gw


def _features(x1: float, x2: float, amount: float) -> dict[str, object]:
    return {
        "features": {"datatype": "FP64", "data": [[x1, x2]]},
        "amount": {"datatype": "FP64", "data": [amount]},
    }


async def test_tritonclient_auto_approved_gets_the_models_tensors(
    oip_gateway: Gateway, oip_python: Path
) -> None:
    """An auto-approved ModelInfer from tritonclient returns MLServer's prediction tensor."""
    key = await create_api_key(oip_gateway, "t-oip")
    result = await triton_call(
        oip_python,
        {
            "url": f"127.0.0.1:{oip_gateway.grpc_port}",
            "key": key,
            "model": MODEL,
            "inputs": _features(1.0, 1.0, 5000),
            "timeout": 10,
        },
    )
    assert result["ok"], result
    assert result["live"] is True
    assert result["shapes"] == {"predict": [1, 1]}
    assert result["outputs"]["predict"][0][0] == pytest.approx(0.9)


async def test_tritonclient_high_risk_blocks_until_reviewers_approve(
    oip_gateway: Gateway, oip_python: Path
) -> None:
    """A high-risk ModelInfer is held; it answers with the model's tensors once approved."""
    key = await create_api_key(oip_gateway, "t-oip")
    call = asyncio.create_task(
        triton_call(
            oip_python,
            {
                "url": f"127.0.0.1:{oip_gateway.grpc_port}",
                "key": key,
                "model": MODEL,
                "inputs": _features(1.0, 1.0, 250000),
                "timeout": 60,
            },
        )
    )
    tasks = []
    for _ in range(300):
        tasks = await oip_gateway.store.list_review_tasks(TaskKind.DECISION, limit=10)
        if tasks:
            break
        await asyncio.sleep(0.1)
    assert len(tasks) == 1 and tasks[0].tier == "high"
    await asyncio.sleep(0.3)
    assert not call.done()  # still waiting for people
    decision_id = tasks[0].decision_id
    first = await oip_gateway.reviews.submit(
        decision_id, Reviewer("ana", "senior"), Verdict.APPROVE
    )
    assert first.status is Status.PENDING_REVIEW  # four eyes: one more approval needed
    await asyncio.sleep(0.3)
    assert not call.done()
    await oip_gateway.reviews.submit(decision_id, Reviewer("ben", "senior"), Verdict.APPROVE)
    result = await asyncio.wait_for(call, 30)
    assert result["ok"], result
    assert result["outputs"]["predict"][0][0] == pytest.approx(0.9)


async def test_decision_id_in_trailers_for_approved_rejected_and_pending(
    oip_gateway: Gateway,
) -> None:
    """Approved: OK; rejected: PERMISSION_DENIED; held past the deadline: DEADLINE_EXCEEDED."""
    key = await create_api_key(oip_gateway, "t-oip")
    address = f"127.0.0.1:{oip_gateway.grpc_port}"

    def request(x1: float, x2: float) -> pb.ModelInferRequest:
        return infer_request(
            MODEL, features=("FP64", [1, 2], [x1, x2]), amount=("FP64", [1], [10.0])
        )

    response, code, _, approved_id = await infer(address, key, request(1.0, 1.0))
    assert code is grpc.StatusCode.OK and approved_id
    assert response is not None and response.outputs[0].name == "predict"

    _, code, details, rejected_id = await infer(address, key, request(0.0, 0.0))
    assert code is grpc.StatusCode.PERMISSION_DENIED and rejected_id
    assert "score below floor" in details

    _, code, details, pending_id = await infer(address, key, request(1.0, 0.0), timeout=0.6)
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED and pending_id
    # The gateway answered before the caller's own 0.6 s deadline: grpc's local deadline error
    # carries neither the decision id in the trailers nor the gateway's message.
    assert f"decision {pending_id} is held for review" in details
    held = await oip_gateway.store.get_decision(pending_id)
    assert held is not None and held.status is Status.PENDING_REVIEW
    assert len({approved_id, rejected_id, pending_id}) == 3


async def test_health_rpcs_need_a_key_only_for_models(oip_gateway: Gateway) -> None:
    """ServerLive/Ready answer without a key; ModelReady and ModelMetadata need one."""
    key = await create_api_key(oip_gateway, "t-oip")
    auth = (("authorization", f"Bearer {key}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{oip_gateway.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert (await stub.ServerLive(pb.ServerLiveRequest())).live
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
        assert (await stub.ServerMetadata(pb.ServerMetadataRequest())).name == "hitl-gateway"
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.ModelReady(pb.ModelReadyRequest(name=MODEL))
        assert denied.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert (await stub.ModelReady(pb.ModelReadyRequest(name=MODEL), metadata=auth)).ready
        meta = await stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), metadata=auth)
        assert [t.name for t in meta.inputs] == ["features", "amount"]
        assert list(meta.inputs[0].shape) == [1, 2] and meta.versions == ["1"]
        with pytest.raises(grpc.aio.AioRpcError) as other:
            await stub.ModelReady(pb.ModelReadyRequest(name=f"{MODEL}-strict"), metadata=auth)
        assert other.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_backend_down_opens_circuit_and_its_return_closes_it(
    oip_gateway: Gateway, model_server: ModelServer
) -> None:
    """Backend stopped: on_model_error applies within deadlines, the circuit opens; back: closes."""
    key = await create_api_key(oip_gateway, "t-oip-reject")
    address = f"127.0.0.1:{oip_gateway.grpc_port}"
    request = infer_request(f"{MODEL}-strict", features=("FP64", [1, 2], [1.0, 1.0]))
    assert (await infer(address, key, request))[1] is grpc.StatusCode.OK

    model_server.stop()
    readiness = await oip_gateway.readiness()
    assert readiness["backend:mlserver"] is False
    reasons: list[str] = []
    for _ in range(4):
        started = time.monotonic()
        _, code, _, decision_id = await infer(address, key, request, timeout=3.0)
        elapsed = time.monotonic() - started
        assert code is grpc.StatusCode.UNAVAILABLE and decision_id  # on_model_error: reject
        assert elapsed < 1.5  # the backend timeout (1s) bounds every call
        decision = await oip_gateway.store.get_decision(decision_id)
        assert decision is not None and decision.status is Status.REJECTED
        reasons.append(" ".join(decision.reasons))
    assert "UNAVAILABLE" in reasons[0]
    assert all("circuit open" in r for r in reasons[2:]), reasons

    model_server.start()
    await model_server.wait_ready()
    await asyncio.sleep(1.0)  # the circuit's cool-down
    for _ in range(20):  # the gateway's channel reconnects within about a second
        response, code, _, _ = await infer(address, key, request)
        if code is grpc.StatusCode.OK:
            break
        await asyncio.sleep(0.3)
    assert code is grpc.StatusCode.OK and response is not None
    assert (await infer(address, key, request))[1] is grpc.StatusCode.OK
    assert (await oip_gateway.readiness())["backend:mlserver"] is True
