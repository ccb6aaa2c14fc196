"""The model inventory decides what a model version may do, on a real gateway over gRPC, on
SQLite and on PostgreSQL (and across two replicas on PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest

from bench.oip_model_server import LinearModel
from gateway._pb.inference import grpc_service_pb2_grpc as pb_grpc
from gateway.app import Gateway
from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.keys import generate_secrets
from gateway.modelrisk.record import ModelKey, ModelStatus
from gateway.testing import create_api_key
from gateway.types import Decision, Role, Status, TaskKind
from tests.integration.replicas import replicas
from tests.integration.serverproc import cli
from tests.modelrisk_helpers import ACTOR, approve_in_gateway, set_status
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "replicas"]

ECHO = ModelKey("echo", "echo", "1")
PASSWORD = "integration password"
AUTO = {"score": 0.95}
"""Approved automatically by t-echo's route when the model may decide."""

EXTRA = """
backends:
  - name: bank-model
    kind: oip
    target: "127.0.0.1:{port}"
    model: scorer
    version: "1"
    timeout: 2s
applications:
  - id: t-model-reject
    tier: limited
    backend: echo
    route:
      - {{when: "output.score >= 0.8", action: approve}}
    on_model_error: reject
  - id: t-explained
    tier: high
    backend: credit-scorer
    route:
      - {{when: "true", action: approve}}
  - id: t-unexplained
    tier: high
    backend: echo
    route:
      - {{when: "true", action: approve}}
  - id: t-bank
    tier: limited
    backend: bank-model
    route:
      - {{when: "output.score >= 0.8", action: approve}}
    oip:
      model_name: bank-scorer
      inputs:
        - {{name: features, datatype: FP64, shape: [1, 2], field: features}}
      outputs:
        - {{name: predict, datatype: FP64, shape: [1, 1], field: score}}
"""


@pytest.fixture
async def oip_port() -> AsyncIterator[int]:
    """A real OIP model server on loopback (answers as version "1")."""
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(LinearModel(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


@pytest.fixture
def policies_dir(policies_dir: Path, oip_port: int) -> Path:
    (policies_dir / "model-enforcement.yaml").write_text(EXTRA.format(port=oip_port))
    return policies_dir


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The gateway's settings on a SQLite file or on a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return settings
    dsn: str = request.getfixturevalue("pg_dsn")
    return replace(settings, store=dsn, **generate_secrets())


@pytest.fixture
async def gw(store_settings: Settings) -> AsyncIterator[Gateway]:
    async with Gateway(store_settings) as gateway:
        yield gateway


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[AsyncGatewayClient]:
    key = await create_api_key(gw)
    async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as c:
        yield c


async def _update(gw: Gateway, key: ModelKey, **changes: object) -> None:
    """Change the approved record of ``key`` in the store, and let the gateway see it now."""
    before = await gw.store.get_model(key)
    assert before is not None
    payload = {"backend": key.backend, "name": key.name, "version": key.version}
    event = audit_event(EventType.MODEL_APPROVED, "", ACTOR, payload)
    await gw.store.update_model(replace(before, **changes), before.status, event)  # type: ignore[arg-type]
    await gw.model_gate.refresh()


async def _created(gw: Gateway, decision: Decision) -> dict[str, object]:
    [created] = [
        e for e in await gw.store.audit_events_for(decision.id) if e.type == "decision.created"
    ]
    assert created.payload is not None
    return created.payload


async def _assert_held(gw: Gateway, decision: Decision, why: str, validation: str) -> None:
    """Held for review with ``why`` among its reasons and in its decision.created event."""
    assert decision.status is Status.PENDING_REVIEW, decision
    assert any(why in r for r in decision.reasons), decision.reasons
    assert decision.model is not None and decision.model.validation.value == validation
    payload = await _created(gw, decision)
    assert any(why in r for r in payload["reasons"]), payload  # type: ignore[attr-defined]
    assert payload["model"]["validation"] == validation  # type: ignore[index]
    tasks = await gw.store.list_review_tasks(TaskKind.DECISION, limit=100)
    assert decision.id in {t.decision_id for t in tasks}  # in the reviewers' queue


async def test_builtin_demo_models_are_approved_so_the_demo_decides_automatically(
    gw: Gateway, client: AsyncGatewayClient
) -> None:
    """At start the built-in models are approved in the inventory: t-echo and the demo's
    credit-limit decide automatically, recording the status ``approved``."""
    decision = await client.decide("t-echo", AUTO)
    assert decision.status is Status.APPROVED
    assert decision.model is not None and decision.model.validation.value == "approved"
    credit = {
        "customer": {"name": "Ana", "national_id": "X1"},
        "income": 90000,
        "debt_ratio": 0.1,
        "past_delinquencies": 0,
        "amount": 5000,
    }
    assert (await client.decide("credit-limit", credit)).status is Status.APPROVED
    record = await gw.store.get_model(ECHO)
    assert record is not None and record.updated_by == "system:builtin"


async def test_a_suspended_version_is_held_with_its_output(
    gw: Gateway, client: AsyncGatewayClient
) -> None:
    """A suspended model version is still called (reviewers see its output) but never decides
    automatically; approved again, it does."""
    await set_status(gw.store, ECHO, ModelStatus.SUSPENDED)
    await gw.model_gate.refresh()
    held = await client.decide("t-echo", AUTO)
    await _assert_held(gw, held, "echo/echo@1 is suspended in the model inventory", "suspended")
    assert held.rule == "model_risk"
    assert held.model_output == {"score": 0.95}
    await set_status(gw.store, ECHO, ModelStatus.APPROVED)
    await gw.model_gate.refresh()
    assert (await client.decide("t-echo", AUTO)).status is Status.APPROVED


async def test_a_retired_version_is_not_even_called(
    gw: Gateway, client: AsyncGatewayClient
) -> None:
    """A retired version is withdrawn for good: held without calling it."""
    await set_status(gw.store, ECHO, ModelStatus.RETIRED)
    await gw.model_gate.refresh()
    held = await client.decide("t-echo", AUTO)
    await _assert_held(gw, held, "is retired in the model inventory", "retired")
    assert held.model_output is None


async def test_an_expired_validation_is_held(gw: Gateway, client: AsyncGatewayClient) -> None:
    """An approved version whose validation expired is held, the expiry in the reason."""
    await _update(gw, ECHO, validation_expires_at=datetime.now(UTC) - timedelta(minutes=1))
    held = await client.decide("t-echo", AUTO)
    await _assert_held(gw, held, "echo/echo@1: its validation expired at", "approved")


async def test_a_tier_above_the_ceiling_is_held(gw: Gateway, client: AsyncGatewayClient) -> None:
    """A version whose ceiling is ``minimal`` is held in the ``limited`` tier."""
    await _update(gw, ECHO, max_tier="minimal")
    held = await client.decide("t-echo", AUTO)
    await _assert_held(gw, held, "may serve tiers up to 'minimal'", "approved")


async def test_an_escalation_by_monitoring_is_held(gw: Gateway, client: AsyncGatewayClient) -> None:
    """A version escalated by monitoring (its breach recorded in the store) is held, with
    monitoring's reason."""
    payload = {"backend": ECHO.backend, "name": ECHO.name, "version": ECHO.version}
    breach = audit_event(EventType.MODEL_BREACH, "", "system", payload)
    escalated = audit_event(EventType.MODEL_ESCALATED, "", "system", payload)
    reason = "override rate 40%"
    await gw.store.record_breach(ECHO, "override_rate", breach, (reason, escalated))
    await gw.model_gate.refresh()
    held = await client.decide("t-echo", AUTO)
    await _assert_held(gw, held, "escalated by monitoring: override rate 40%", "approved")


async def test_a_barred_version_is_rejected_where_model_errors_reject(
    gw: Gateway, client: AsyncGatewayClient
) -> None:
    """With ``on_model_error: reject`` a barred version's decision is rejected, reason kept."""
    await set_status(gw.store, ECHO, ModelStatus.SUSPENDED)
    await gw.model_gate.refresh()
    decision = await client.decide("t-model-reject", AUTO)
    assert decision.status is Status.REJECTED and decision.rule == "model_risk"
    assert any("suspended in the model inventory" in r for r in decision.reasons)


async def test_an_oip_version_missing_from_the_inventory_is_held_until_approved(
    gw: Gateway, client: AsyncGatewayClient
) -> None:
    """A bank's OIP model is never registered by the gateway: unregistered, its decisions are
    held; registered and approved, they are automatic."""
    features = {"features": [1.0, 1.0]}
    held = await client.decide("t-bank", features)
    await _assert_held(
        gw, held, "bank-model/scorer@1 is not in the model inventory", "unregistered"
    )
    assert held.model_output == {"score": pytest.approx(0.9)}
    await approve_in_gateway(gw, "bank-model", "scorer", "1")
    assert (await client.decide("t-bank", features)).status is Status.APPROVED


async def test_a_tier_requiring_explanations_holds_an_unexplained_output(
    gw: Gateway, client: AsyncGatewayClient
) -> None:
    """In a tier with require_explanation, an output without one is held and the reviewer's
    item page says it is missing; the credit model's explained output is decided automatically."""
    held = await client.decide("t-unexplained", AUTO)
    await _assert_held(gw, held, "model output has no explanation", "approved")
    assert held.rule == "require_explanation"
    await gw.accounts.create("sam", Role.SENIOR, PASSWORD, ("senior",))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}") as web:
        login = await web.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf is not None
        form = {"csrf": csrf[1], "name": "sam", "password": PASSWORD}
        assert (await web.post("/ui/login", data=form)).status_code == 303
        page = await web.get(f"/ui/items/{held.id}")
    assert page.status_code == 200
    assert "model output has no explanation, which tier &#39;high&#39; requires" in page.text
    credit = {"income": 90000, "debt_ratio": 0.1, "past_delinquencies": 0, "amount": 5000}
    assert (await client.decide("t-explained", credit)).status is Status.APPROVED


async def test_a_suspension_on_one_replica_reaches_the_other_within_a_second(
    replicas: tuple[Gateway, Gateway],
) -> None:
    """Suspended through replica A's store, replica B holds its next decisions within a
    second; approved again, B decides automatically within a second."""
    a, b = replicas
    key = await create_api_key(a)
    async with AsyncGatewayClient(f"127.0.0.1:{b.grpc_port}", api_key=key) as on_b:
        assert (await on_b.decide("t-echo", AUTO)).status is Status.APPROVED
        loop = asyncio.get_running_loop()
        for status, expected in (
            (ModelStatus.SUSPENDED, Status.PENDING_REVIEW),
            (ModelStatus.APPROVED, Status.APPROVED),
        ):
            await set_status(a.store, ECHO, status)
            start = loop.time()
            while (await on_b.decide("t-echo", AUTO)).status is not expected:
                assert loop.time() - start < 1.0, f"{status} not applied on B within 1 s"
                await asyncio.sleep(0.02)


async def test_policy_check_warns_about_versions_the_inventory_does_not_allow(
    gw: Gateway, store_settings: Settings
) -> None:
    """`policy check` with a reachable store passes but warns about an OIP version missing
    from the inventory and a suspended one; built-in versions it registers itself are quiet."""
    await set_status(gw.store, ECHO, ModelStatus.SUSPENDED)
    where = ["--data-dir", str(store_settings.data_dir)]
    if store_settings.store:
        where += ["--store", store_settings.store]
    done = await asyncio.to_thread(cli, "policy", "check", *where, str(store_settings.policies))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, done.stderr
    assert "model bank-model/scorer@1 is not in the model inventory" in warnings[0]
    assert "model echo/echo@1 is suspended in the model inventory" in warnings[1]


def test_a_policy_that_still_states_validation_is_refused_naming_the_line(
    policies_dir: Path,
) -> None:
    """An old backend with ``validation: approved`` is refused by `policy check`, naming the
    file, line and field, and pointing to the model inventory."""
    backends = policies_dir / "backends.yaml"
    lines = backends.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if 'version: "2"' in line)
    lines.insert(at + 1, "    validation: approved")
    backends.write_text("\n".join(lines) + "\n")
    done = cli("policy", "check", str(policies_dir))
    assert done.returncode == 1
    assert f"backends.yaml:{at + 2}: backends[1].validation: moved to the model inventory" in (
        done.stderr
    )
    assert "hitl-gateway models register" in done.stderr
