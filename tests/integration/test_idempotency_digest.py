"""An idempotency key is bound to the request that first used it, on both stores: a retry of the
same request gets the first decision, the key with another request ALREADY_EXISTS, through
Decide and OIP, at the lookup before the model call and in the writer's duplicate detection."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway._pb.hitl.admin.v1 import admin_pb2, admin_pb2_grpc
from gateway._pb.hitl.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.config import Settings
from gateway.core.auth import new_key
from gateway.core.command import DecideCommand
from gateway.core.idempotency import request_digest
from gateway.store.sqlite.erasure import erase_subject_inputs
from gateway.telemetry.metrics import REGISTRY
from gateway.testing import create_api_key
from gateway.types import Decision, Status
from tests.integration.oip_app import OIP_APP, settings
from tests.integration.oip_tools.harness import infer, infer_request
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "settings"]

SLOW_APP = """
backends:
  - {name: slow-long, kind: builtin, model: slow, version: "1", timeout: 10s}
applications:
  - id: t-slow-key
    tier: limited
    backend: slow-long
    route:
      - {when: "output.score >= 0.8", action: approve}
"""

FIRST: dict[str, Any] = {"score": 0.9, "customer": {"id": "c-1", "segment": "retail"}}


@pytest.fixture
def policies_dir(policies_dir: Path) -> Path:
    """The test policies, an application OIP clients can call, and one with a slow model."""
    (policies_dir / "t-oip.yaml").write_text(OIP_APP)
    (policies_dir / "t-slow.yaml").write_text(SLOW_APP)
    return policies_dir


def _model_calls(backend: str) -> float:
    """How many times ``backend`` has answered in this process (its latency histogram)."""
    labels = {"backend": backend, "result": "ok"}
    return REGISTRY.get_sample_value("hitl_model_latency_seconds_count", labels) or 0.0


async def _stored(gateway: Gateway, decision_id: str) -> Decision:
    stored = await gateway.store.get_decision(decision_id)
    assert stored is not None
    return stored


async def test_a_retry_of_the_same_request_gets_the_first_decision(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """The same request again, keys in another order, returns the first decision, made once."""
    first = await client.decide(
        "t-echo",
        FIRST,
        subject_ref="cust-1",
        idempotency_key="k-same",
        labels={"channel": "web", "branch": "north"},
        requested_by="maria",
    )
    calls = _model_calls("echo")
    retry = await client.decide(
        "t-echo",
        {"customer": {"segment": "retail", "id": "c-1"}, "score": 0.9},
        subject_ref="cust-1",
        idempotency_key="k-same",
        labels={"branch": "north", "channel": "web"},
        requested_by=" maria ",
    )
    assert retry.id == first.id and retry.status is Status.APPROVED
    assert _model_calls("echo") == calls
    assert len(await gateway.store.audit_events_for(first.id)) == 1
    stored = await _stored(gateway, first.id)
    expected = DecideCommand(
        application="t-echo",
        input=FIRST,
        subject_ref="cust-1",
        labels={"channel": "web", "branch": "north"},
        requested_by="maria",
    )
    assert stored.request_digest == request_digest(expected)
    assert stored.request_digest.startswith("sha256:") and len(stored.request_digest) == 71


async def test_a_decision_without_a_key_keeps_no_digest(gateway: Gateway, api_key: str) -> None:
    """A Decide sent without an idempotency key (the raw API allows it) stores no digest."""
    request = gateway_pb2.DecideRequest(application="t-echo", subject_ref="cust-1")
    request.input.update(FIRST)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        answer = await gateway_pb2_grpc.DecisionGatewayStub(channel).Decide(
            request, metadata=(("authorization", f"Bearer {api_key}"),)
        )
    stored = await _stored(gateway, answer.id)
    assert stored.idempotency_key == "" and stored.request_digest == ""


@pytest.mark.parametrize(
    "change",
    [
        {"input": {**FIRST, "score": 0.95}},
        {"input": {"score": 0.9, "customer": {"id": "c-2", "segment": "retail"}}},
        {"subject_ref": "cust-2"},
        {"subject_ref": ""},
        {"labels": {"channel": "branch"}},
        {"labels": {}},
        {"requested_by": "tom"},
        {"requested_by": ""},
    ],
)
async def test_a_key_reused_for_another_request_is_refused(
    gateway: Gateway, client: AsyncGatewayClient, change: dict[str, Any]
) -> None:
    """Another input, subject, labels or requester with a used key: ALREADY_EXISTS naming the
    key and the first decision, without a model call or anything recorded."""
    request: dict[str, Any] = {
        "input": FIRST,
        "subject_ref": "cust-1",
        "labels": {"channel": "web"},
        "requested_by": "maria",
    }
    first = await client.decide("t-echo", idempotency_key="k-1", **request)
    before = await gateway.store.audit_events(limit=10_000)
    calls = _model_calls("echo")
    with pytest.raises(GatewayCallError) as err:
        await client.decide("t-echo", idempotency_key="k-1", **{**request, **change})
    assert err.value.code is grpc.StatusCode.ALREADY_EXISTS
    assert "'k-1'" in err.value.details and first.id in err.value.details
    assert err.value.decision_id == first.id
    assert _model_calls("echo") == calls
    assert await gateway.store.audit_events(limit=10_000) == before
    again = await client.decide("t-echo", idempotency_key="k-1", **request)
    assert again.id == first.id


async def test_a_concurrent_reuse_is_caught_where_the_writer_finds_the_key(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """Two calls that both pass the early lookup (both reach the model): the one that commits
    second is refused if its request differs, and gets the first decision if it is the same."""
    calls = _model_calls("slow-long")
    first, second = await asyncio.gather(
        client.decide("t-slow-key", {"score": 0.9, "sleep_s": 0.5}, idempotency_key="race-1"),
        client.decide("t-slow-key", {"score": 0.9, "sleep_s": 1.0}, idempotency_key="race-1"),
        return_exceptions=True,
    )
    assert _model_calls("slow-long") == calls + 2
    assert isinstance(first, Decision) and first.status is Status.APPROVED
    assert isinstance(second, GatewayCallError), second
    assert second.code is grpc.StatusCode.ALREADY_EXISTS
    assert second.decision_id == first.id and first.id in second.details
    assert len(await gateway.store.audit_events_for(first.id)) == 1

    same = {"score": 0.9, "sleep_s": 0.5}
    both = await asyncio.gather(
        *(client.decide("t-slow-key", same, idempotency_key="race-2") for _ in range(2))
    )
    assert _model_calls("slow-long") == calls + 4
    assert both[0].id == both[1].id
    assert len(await gateway.store.audit_events_for(both[0].id)) == 1


async def test_oip_binds_its_key_to_the_request_as_decide_does(
    gateway: Gateway, api_key: str, client: AsyncGatewayClient
) -> None:
    """ModelInfer with a used key and other tensors or parameters is ALREADY_EXISTS; the same
    request gets the first decision; a Decide with that same request does too."""
    address = f"127.0.0.1:{gateway.grpc_port}"

    def request(score: float, **params: str) -> Any:
        req = infer_request("t-oip-model", score=("FP64", [1], [score]))
        for name, value in {"idempotency_key": "oip-k", **params}.items():
            req.parameters[name].string_param = value
        return req

    params = {"subject_ref": "cust-9", "requested_by": "agent-7"}
    response, code, _, first_id = await infer(address, api_key, request(0.9, **params))
    assert code is grpc.StatusCode.OK and response is not None and first_id

    for other in (
        request(0.95, **params),
        request(0.9, subject_ref="cust-8", requested_by="agent-7"),
        request(0.9, subject_ref="cust-9"),
    ):
        response, code, details, decision_id = await infer(address, api_key, other)
        assert code is grpc.StatusCode.ALREADY_EXISTS, details
        assert decision_id == first_id and "'oip-k'" in details and first_id in details

    response, code, _, decision_id = await infer(address, api_key, request(0.9, **params))
    assert code is grpc.StatusCode.OK and decision_id == first_id
    via_decide = await client.decide(
        "t-oip",
        {"score": 0.9},
        idempotency_key="oip-k",
        subject_ref="cust-9",
        requested_by="agent-7",
    )
    assert via_decide.id == first_id
    with pytest.raises(GatewayCallError) as err:
        await client.decide("t-oip", {"score": 0.9}, idempotency_key="oip-k")
    assert err.value.code is grpc.StatusCode.ALREADY_EXISTS


async def test_erasure_blanks_the_digest_and_a_retry_then_gets_the_decision(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """After the subject's erasure the stored digest is empty, and the key answers any retry
    with the (erased) decision, as an old decision without a digest does."""
    gone = await client.decide("t-echo", FIRST, subject_ref="cust-e", idempotency_key="e-1")
    kept = await client.decide("t-echo", FIRST, subject_ref="cust-f", idempotency_key="e-2")
    assert (await _stored(gateway, gone.id)).request_digest != ""

    token, record = new_key((), role="admin")
    await gateway.store.add_api_key(record)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        response = await admin_pb2_grpc.AdminServiceStub(channel).EraseSubject(
            admin_pb2.EraseSubjectRequest(subject_ref="cust-e", reason="DSR-7"),
            metadata=(("authorization", f"Bearer {token}"),),
        )
    assert response.decisions_erased == 1

    erased = await _stored(gateway, gone.id)
    assert erased.request_digest == "" and erased.input == {}
    assert (await _stored(gateway, kept.id)).request_digest != ""
    retry = await client.decide("t-echo", {"score": 0.1}, subject_ref="x", idempotency_key="e-1")
    assert retry.id == gone.id and retry.input == {}
    with pytest.raises(GatewayCallError) as err:
        await client.decide("t-echo", {"score": 0.1}, subject_ref="cust-f", idempotency_key="e-2")
    assert err.value.code is grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_offline_erasure_of_a_sqlite_file_blanks_the_digest(settings: Settings) -> None:
    """`audit erase --db` on a stopped SQLite gateway's file blanks the subject's digests too."""
    async with Gateway(settings) as gw:
        key = await create_api_key(gw)
        async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as c:
            gone = await c.decide("t-echo", FIRST, subject_ref="cust-o", idempotency_key="o-1")
            kept = await c.decide("t-echo", FIRST, subject_ref="cust-p", idempotency_key="o-2")
    db = settings.data_dir / "gateway.db"
    assert erase_subject_inputs(db, "cust-o") == 1
    conn = sqlite3.connect(db)
    try:
        rows = dict(conn.execute("SELECT id, request_digest FROM decisions").fetchall())
    finally:
        conn.close()
    assert rows[gone.id] == "" and rows[kept.id].startswith("sha256:")
