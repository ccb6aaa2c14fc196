"""The Open Inference Protocol over REST on the HTTP port: the real ``tritonclient.http`` (in
the OIP environment, see ``oip_tools/venv.py``) and plain HTTP calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import Gateway
from gateway.testing import create_api_key
from gateway.types import Status
from tests.integration.oip_app import OIP_APP
from tests.integration.oip_tools import venv
from tests.integration.oip_tools.harness import triton_call

# The first test here may create .venv-oip (a pip install: minutes on a slow network).
pytestmark = pytest.mark.timeout(900)

MODEL = "t-oip-model"


@pytest.fixture
def policies_dir(policies_dir: Path) -> Path:
    """The test policies plus an application that OIP clients can call."""
    (policies_dir / "t-oip.yaml").write_text(OIP_APP)
    return policies_dir


@pytest.fixture(scope="session")
def oip_python() -> Path:
    return venv.ensure()


def _score(value: float) -> dict[str, Any]:
    return {"score": {"datatype": "FP64", "data": [value]}}


@pytest.mark.parametrize("binary", [True, False])
async def test_tritonclient_http_gets_the_models_tensors(
    gateway: Gateway, oip_python: Path, binary: bool
) -> None:
    """An auto-approved infer from tritonclient.http returns the model's tensor and the id."""
    key = await create_api_key(gateway, "t-oip")
    request = {
        "url": f"127.0.0.1:{gateway.http_port}",
        "key": key,
        "model": MODEL,
        "inputs": _score(0.9),
        "binary": binary,
    }
    result = await triton_call(oip_python, request, "triton_http_call.py")
    assert result["ok"], result
    assert result["live"] is True and result["ready"] is True and result["model_ready"] is True
    assert result["metadata"]["inputs"] == [{"name": "score", "datatype": "FP64", "shape": [1]}]
    assert result["outputs"] == {"score": [0.9]}
    decision_id = result["response"]["parameters"]["decision_id"]
    decision = await gateway.store.get_decision(decision_id)
    assert decision is not None and decision.status is Status.APPROVED


async def test_tritonclient_http_gets_a_pending_status_for_a_held_request(
    gateway: Gateway, oip_python: Path
) -> None:
    """A held infer answers 202 with the decision id once the caller's wait ends."""
    key = await create_api_key(gateway, "t-oip")
    request = {
        "url": f"127.0.0.1:{gateway.http_port}",
        "key": key,
        "model": MODEL,
        "inputs": _score(0.5),
        "headers": {"x-hitl-wait": "0.5"},
    }
    result = await triton_call(oip_python, request, "triton_http_call.py")
    assert not result["ok"]
    assert result["status"] == "202"
    assert "held for review" in result["message"]


async def test_rest_answer_carries_the_decision_id_header(gateway: Gateway) -> None:
    """JSON tensors in, JSON tensors out, the decision id in ``x-hitl-decision-id``."""
    key = await create_api_key(gateway, "t-oip")
    base = f"http://127.0.0.1:{gateway.http_port}/v2/models/{MODEL}"
    body = {
        "id": "r1",
        "inputs": [{"name": "score", "datatype": "FP64", "shape": [1], "data": [0.85]}],
    }
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {key}"}) as http:
        ok = await http.post(f"{base}/infer", json=body)
        held = await http.post(
            f"{base}/infer",
            json={**body, "inputs": [{**body["inputs"][0], "data": [0.1]}]},
            headers={"x-hitl-wait": "0"},
        )
    assert ok.status_code == 200
    answer = ok.json()
    assert answer["id"] == "r1"
    assert answer["outputs"] == [
        {"name": "score", "datatype": "FP64", "shape": [1], "data": [0.85]}
    ]
    assert ok.headers["x-hitl-decision-id"] == answer["parameters"]["decision_id"]
    assert held.status_code == 202
    assert held.json()["decision_id"] == held.headers["x-hitl-decision-id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"inputs": [{"name": "score", "datatype": "FP64", "shape": [1], "data": ["x"]}]},
            "inputs[0].data",
        ),
        (
            {"inputs": [{"name": "score", "datatype": "FP99", "shape": [1], "data": [1]}]},
            "inputs[0].datatype",
        ),
        (
            {"inputs": [{"name": "score", "datatype": "FP64", "shape": [2], "data": [1]}]},
            "inputs[0].data",
        ),
        (
            {"inputs": [{"name": "nope", "datatype": "FP64", "shape": [1], "data": [1]}]},
            "inputs[nope]",
        ),
        ({"inputs": []}, "inputs"),
        ([1, 2], "body"),
    ],
)
async def test_bad_infer_requests_name_the_field(gateway: Gateway, body: Any, field: str) -> None:
    """Every malformed infer body is a 400 naming its field."""
    key = await create_api_key(gateway, "t-oip")
    url = f"http://127.0.0.1:{gateway.http_port}/v2/models/{MODEL}/infer"
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {key}"}) as http:
        response = await http.post(url, json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]


async def test_model_routes_need_a_key_and_health_does_not(gateway: Gateway) -> None:
    """Health answers anyone; model metadata and infer need an allowed key."""
    base = f"http://127.0.0.1:{gateway.http_port}"
    async with httpx.AsyncClient() as http:
        live = await http.get(f"{base}/v2/health/live")
        anonymous = await http.get(f"{base}/v2/models/{MODEL}")
        unknown = await http.post(f"{base}/v2/models/nope/infer", content=b"{")
    assert live.status_code == 200 and live.json() == {"live": True}
    assert anonymous.status_code == 401
    assert unknown.status_code == 401
