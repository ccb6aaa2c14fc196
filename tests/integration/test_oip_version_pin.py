"""Version pinning against a real Seldon MLServer that answers under another model version.

The policy pins version "1" and the inventory approves it; MLServer finds the model as version
"1" but reports "2" (in its metadata and in every ModelInferResponse), as a server does whose
model was swapped behind the version asked for. The gateway must never decide automatically on
such an answer. MLServer runs in ``.venv-oip`` (see ``oip_tools/venv.py``).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.config import Settings
from gateway.keys import generate_secrets
from gateway.telemetry.metrics import REGISTRY
from gateway.testing import create_api_key
from gateway.types import Status
from tests.integration.oip_tools import venv
from tests.integration.oip_tools.harness import ModelServer
from tests.modelrisk_helpers import approve_in_gateway
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server"]

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]

POLICY = """
backends:
  - name: mlserver
    kind: oip
    target: "{target}"
    model: scorer
    version: "1"
    timeout: 2s
applications:
  - id: t-pinned
    tier: limited
    backend: mlserver
    route:
      - {{when: "true", action: approve}}
    on_model_error: review
    oip:
      model_name: pinned-scorer
      inputs:
        - {{name: features, datatype: FP64, shape: [1, 2], field: features}}
      outputs:
        - {{name: predict, datatype: FP64, shape: [1, 1], field: score}}
  - id: t-pinned-strict
    tier: limited
    backend: mlserver
    route:
      - {{when: "true", action: approve}}
    on_model_error: reject
    oip:
      model_name: pinned-scorer-strict
      inputs:
        - {{name: features, datatype: FP64, shape: [1, 2], field: features}}
      outputs:
        - {{name: predict, datatype: FP64, shape: [1, 1], field: score}}
"""
FEATURES = {"features": [1.0, 1.0]}


@pytest.fixture(scope="module")
def misreporting_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """MLServer: model ``scorer`` found as version "1", answering as version "2"."""
    server = ModelServer(venv.ensure(), tmp_path_factory.mktemp("mlserver") / "models", "2")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def pinned_settings(
    request: pytest.FixtureRequest, tmp_path: Path, misreporting_server: ModelServer
) -> Settings:
    """The shipped policies plus a backend pinned to "1" on the misreporting server, on each
    store."""
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    (policies / "pinned.yaml").write_text(POLICY.format(target=misreporting_server.target))
    settings = Settings(
        grpc_port=0,
        http_port=0,
        data_dir=tmp_path / "var",
        policies=policies,
        log_level="warning",
        shutdown_grace=1.0,
    )
    if request.param == "sqlite":
        return settings
    dsn: str = request.getfixturevalue("pg_dsn")
    return replace(settings, store=dsn, **generate_secrets())


@pytest.fixture
async def gw(pinned_settings: Settings, misreporting_server: ModelServer) -> AsyncIterator[Gateway]:
    await misreporting_server.wait_ready()
    async with Gateway(pinned_settings) as gateway:
        # Approved: the version reported is then the only reason not to decide automatically.
        await approve_in_gateway(gateway, "mlserver", "scorer", "1")
        yield gateway


def _mismatches(where: str) -> float:
    labels = {"backend": "mlserver", "where": where}
    return REGISTRY.get_sample_value("hitl_model_version_mismatches_total", labels) or 0.0


async def test_an_answer_under_another_version_is_held_counted_and_audited(gw: Gateway) -> None:
    """MLServer answering as "2" for the pinned "1": held for review with the reason, counted,
    and a model.version_mismatch event beside decision.created, with the request's trace."""
    before = _mismatches("infer")
    key = await create_api_key(gw)
    async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as client:
        decision = await client.decide("t-pinned", FEATURES)
    assert decision.status is Status.PENDING_REVIEW
    assert decision.rule == "on_model_error"
    why = "model scorer answered as version '2', not the pinned version '1'"
    assert any(why in r for r in decision.reasons), decision.reasons
    assert decision.model is not None and decision.model.version == "1"
    assert _mismatches("infer") == before + 1
    events = {e.type: e for e in await gw.store.audit_events_for(decision.id)}
    assert set(events) == {"decision.created", "model.version_mismatch"}
    mismatch = events["model.version_mismatch"]
    assert mismatch.payload is not None
    assert (mismatch.payload["pinned_version"], mismatch.payload["reported_version"]) == ("1", "2")
    assert mismatch.trace_id and mismatch.trace_id == events["decision.created"].trace_id
    assert mismatch.trace_id == decision.trace_id


async def test_where_model_errors_reject_the_call_is_refused_and_recorded(gw: Gateway) -> None:
    """With on_model_error: reject the caller gets UNAVAILABLE naming the decision, which is
    recorded rejected with its mismatch event."""
    key = await create_api_key(gw)
    async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as client:
        with pytest.raises(GatewayCallError) as caught:
            await client.decide("t-pinned-strict", FEATURES)
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    stored = await gw.store.get_decision(caught.value.decision_id)
    assert stored is not None and stored.status is Status.REJECTED
    types = [e.type for e in await gw.store.audit_events_for(stored.id)]
    assert "model.version_mismatch" in types


async def test_readiness_fails_while_the_metadata_reports_another_version(gw: Gateway) -> None:
    """The backend is not ready while MLServer's metadata lists "2" and not the pinned "1"."""
    before = _mismatches("ready")
    checks = await gw.readiness()
    assert checks["backend:mlserver"] is False
    assert _mismatches("ready") == before + 1
