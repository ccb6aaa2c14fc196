"""``requested_by`` on the way in: through Decide and through OIP (the real tritonclient), stored,
returned, audited, and required by tiers that say so, on both stores."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.telemetry.metrics import REGISTRY
from gateway.types import Status, TaskKind
from tests.integration.oip_app import settings
from tests.integration.oip_tools import venv
from tests.integration.oip_tools.harness import infer, infer_request
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "settings"]

# The first OIP test creates .venv-oip when it is missing (see oip_tools/venv.py).
pytestmark = pytest.mark.timeout(900)

OIP_APPS = """
applications:
  - id: t-oip
    tier: limited
    backend: echo
    route:
      - {when: "output.score >= 0.8", action: approve}
    oip:
      model_name: t-oip-model
      inputs:
        - {name: score, datatype: FP64, shape: [1], field: score}
      outputs:
        - {name: score, datatype: FP64, shape: [1], field: score}
  - id: t-oip-high
    tier: high
    backend: echo
    route:
      - {when: "output.score >= 0.8", action: approve}
    oip:
      model_name: t-oip-high-model
      inputs:
        - {name: score, datatype: FP64, shape: [1], field: score}
      outputs:
        - {name: score, datatype: FP64, shape: [1], field: score}
"""

VIP = {"score": 0.5, "vip": True}
"""t-echo escalates this to the high tier, which (in these tests) requires a requester."""

TRITON_CALLS = r"""
import json, sys
import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

req = json.loads(sys.argv[1])
client = triton.InferenceServerClient(req["url"])
outcomes = []
for call in req["calls"]:
    tensor = triton.InferInput("score", [1], "FP64")
    tensor.set_data_from_numpy(np.array([call["score"]], dtype=np.float64))
    try:
        result = client.infer(
            call["model"], [tensor], headers={"authorization": "Bearer " + req["key"]},
            parameters=call["parameters"], client_timeout=call.get("timeout", 10),
        )
        outcomes.append({"ok": True, "score": result.as_numpy("score").tolist()})
    except InferenceServerException as exc:
        outcomes.append({"ok": False, "status": exc.status(), "message": exc.message()})
print(json.dumps(outcomes))
"""


async def triton_calls(gateway: Gateway, key: str, calls: list[dict[str, Any]]) -> list[Any]:
    """Run ModelInfer calls through the real tritonclient (in .venv-oip); one outcome each."""
    request = {"url": f"127.0.0.1:{gateway.grpc_port}", "key": key, "calls": calls}
    proc = await asyncio.create_subprocess_exec(
        str(venv.ensure()),
        "-c",
        TRITON_CALLS,
        json.dumps(request),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:]
    outcomes: list[Any] = json.loads(out)
    return outcomes


@pytest.fixture
def policies_dir(policies_dir: Path) -> Path:
    """The test policies, with the high tier requiring a requester and two OIP applications."""
    tiers = policies_dir / "tiers.yaml"
    text = tiers.read_text()
    high = "  - name: high\n"
    assert text.count(high) == 1
    tiers.write_text(text.replace(high, f"{high}    require_requester: true\n"))
    (policies_dir / "t-oip.yaml").write_text(OIP_APPS)
    return policies_dir


def _model_calls(backend: str) -> float:
    """How many times ``backend`` has answered in this process (its latency histogram)."""
    labels = {"backend": backend, "result": "ok"}
    return REGISTRY.get_sample_value("hitl_model_latency_seconds_count", labels) or 0.0


async def test_requested_by_is_stored_returned_and_audited(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """A Decide's requester, stripped, is in the answer, the row, GetDecision and the trail."""
    d = await client.decide(
        "t-echo", {"score": 0.9}, subject_ref="cust-1", requested_by="  officer-maria  "
    )
    assert d.status is Status.APPROVED and d.requested_by == "officer-maria"
    stored = await gateway.store.get_decision(d.id)
    assert stored is not None and stored.requested_by == "officer-maria"
    assert (await client.get(d.id)).requested_by == "officer-maria"
    watched = [w async for w in client.watch(d.id)]
    assert [w.requested_by for w in watched] == ["officer-maria"]
    (created,) = await gateway.store.audit_events_for(d.id)
    assert created.type == "decision.created"
    assert created.payload is not None and created.payload["requested_by"] == "officer-maria"

    anonymous = await client.decide("t-echo", {"score": 0.9})
    assert anonymous.requested_by == ""
    (created,) = await gateway.store.audit_events_for(anonymous.id)
    assert created.payload is not None and created.payload["requested_by"] == ""


async def test_a_tier_that_requires_a_requester_refuses_a_decide_without_one(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """Escalated to a require_requester tier, a Decide without requested_by is INVALID_ARGUMENT,
    before the model is called, and leaves nothing behind; with it, the decision is held."""
    before = await gateway.store.audit_events(limit=10_000)
    calls = _model_calls("echo")
    with pytest.raises(GatewayCallError) as err:
        await client.decide("t-echo", VIP, subject_ref="cust-2", idempotency_key="vip-1")
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details.startswith("requested_by: is required")
    assert "'high'" in err.value.details and err.value.decision_id == ""
    assert _model_calls("echo") == calls
    assert await gateway.store.audit_events(limit=10_000) == before
    assert await gateway.store.list_review_tasks(TaskKind.DECISION) == []
    assert await gateway.store.find_by_idempotency_key("t-echo", "vip-1") is None

    # The same key, now with the requester, makes the decision: nothing of the refusal stayed.
    held = await client.decide(
        "t-echo", VIP, subject_ref="cust-2", idempotency_key="vip-1", requested_by="maria"
    )
    assert held.tier == "high" and held.status is Status.PENDING_REVIEW
    assert held.requested_by == "maria"
    assert _model_calls("echo") == calls + 1
    # The application's own tier does not require one.
    plain = await client.decide("t-echo", {"score": 0.5})
    assert plain.tier == "limited" and plain.requested_by == ""


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("maria\nadmin", grpc.StatusCode.INVALID_ARGUMENT),
        ("maria\x07", grpc.StatusCode.INVALID_ARGUMENT),
        ("m" * 257, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
async def test_a_malformed_requester_is_refused_naming_the_field(
    gateway: Gateway, api_key: str, value: str, code: grpc.StatusCode
) -> None:
    """A requester with a line break, a control character or over 256 characters is refused."""
    before = await gateway.store.audit_events(limit=10_000)
    request = pb.DecideRequest(application="t-echo", requested_by=value)
    request.input.update({"score": 0.9})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.DecisionGatewayStub(channel).Decide(
                request, metadata=(("authorization", f"Bearer {api_key}"),)
            )
    assert err.value.code() is code
    assert (err.value.details() or "").startswith("requested_by:")
    assert await gateway.store.audit_events(limit=10_000) == before


async def test_requested_by_through_oip_is_recorded_and_required_alike(
    gateway: Gateway, api_key: str, client: AsyncGatewayClient
) -> None:
    """tritonclient's string parameter requested_by is recorded as Decide's is, a tier that
    requires one refuses ModelInfer without it, and a malformed one is refused by name."""
    calls = [
        {
            "model": "t-oip-model",
            "score": 0.9,
            "parameters": {"requested_by": " agent-7 ", "idempotency_key": "oip-1"},
        },
        {"model": "t-oip-high-model", "score": 0.9, "parameters": {"idempotency_key": "oip-2"}},
        {
            "model": "t-oip-high-model",
            "score": 0.5,
            "parameters": {"requested_by": "agent-7", "idempotency_key": "oip-3"},
            "timeout": 1,
        },
        {"model": "t-oip-model", "score": 0.9, "parameters": {"requested_by": "agent\t7"}},
    ]
    approved, refused, held, malformed = await triton_calls(gateway, api_key, calls)

    assert approved == {"ok": True, "score": [0.9]}
    decision = await gateway.store.find_by_idempotency_key("t-oip", "oip-1")
    assert decision is not None and decision.requested_by == "agent-7"
    assert (await client.get(decision.id)).requested_by == "agent-7"
    (created,) = await gateway.store.audit_events_for(decision.id)
    assert created.payload is not None and created.payload["requested_by"] == "agent-7"

    assert refused["ok"] is False and refused["status"] == "StatusCode.INVALID_ARGUMENT"
    assert refused["message"].startswith("requested_by: is required")
    assert await gateway.store.find_by_idempotency_key("t-oip-high", "oip-2") is None

    assert held["ok"] is False and held["status"] == "StatusCode.DEADLINE_EXCEEDED"
    pending = await gateway.store.find_by_idempotency_key("t-oip-high", "oip-3")
    assert pending is not None and pending.requested_by == "agent-7"
    assert pending.tier == "high" and pending.status is Status.PENDING_REVIEW

    assert malformed["ok"] is False and malformed["status"] == "StatusCode.INVALID_ARGUMENT"
    assert malformed["message"].startswith("parameters[requested_by]:")


async def test_oip_refusal_for_a_missing_requester_leaves_nothing(
    gateway: Gateway, api_key: str
) -> None:
    """A ModelInfer refused for want of a requester calls no model and records nothing."""
    before = await gateway.store.audit_events(limit=10_000)
    calls = _model_calls("echo")
    request = infer_request("t-oip-high-model", score=("FP64", [1], [0.9]))
    response, code, details, decision_id = await infer(
        f"127.0.0.1:{gateway.grpc_port}", api_key, request
    )
    assert response is None and code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("requested_by: is required") and decision_id == ""
    assert _model_calls("echo") == calls
    assert await gateway.store.audit_events(limit=10_000) == before
