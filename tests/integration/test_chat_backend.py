"""The ``openai`` backend's transport: TLS with a private CA, and a server that is down."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from gateway.app import Gateway
from gateway.config import Settings
from gateway.testing import create_api_key
from gateway.types import Status
from tests.integration.chat_server import MODEL, ChatServer
from tests.integration.tls_certs import TestCA
from tests.modelrisk_helpers import approve_in_gateway

ROOT = Path(__file__).resolve().parents[2]

POLICY = """
backends:
  - {{name: tls-llm, kind: openai, target: "{url}", model: {model}, version: "1", timeout: 1s,
     tls: true, tls_ca: ca.pem, circuit: {{failures: 1, cooldown: 30s}}}}
applications:
  - id: t-tls
    tier: limited
    backend: tls-llm
    route:
      - {{when: "true", action: approve}}
    chat: {{model_name: tls-assistant}}
"""


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[ChatServer, Path]]:
    ca = TestCA(tmp_path)
    cert = ca.server_cert()
    server = ChatServer((cert.cert_file, cert.key_file))
    await server.start()
    try:
        yield server, ca.ca_file
    finally:
        await server.stop()


@pytest.fixture
async def tls_gateway(
    tmp_path: Path, tls_server: tuple[ChatServer, Path]
) -> AsyncIterator[Gateway]:
    server, ca_file = tls_server
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(ca_file, policies / "ca.pem")
    (policies / "chat.yaml").write_text(POLICY.format(url=server.url, model=MODEL))
    settings = Settings(
        grpc_port=0,
        http_port=0,
        data_dir=tmp_path / "var",
        policies=policies,
        log_level="warning",
        shutdown_grace=1.0,
    )
    async with Gateway(settings) as gw:
        await approve_in_gateway(gw, "tls-llm", MODEL, "1")
        yield gw


async def test_tls_backend_with_a_private_ca_answers_then_fails_closed_when_down(
    tls_gateway: Gateway, tls_server: tuple[ChatServer, Path]
) -> None:
    """Over TLS with the policy's CA the answer comes back; with the server gone the decision
    is held (``on_model_error: review``), never approved, and the open circuit is named."""
    key = await create_api_key(tls_gateway, "t-tls")
    base = f"http://127.0.0.1:{tls_gateway.http_port}/v1"
    async with openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0) as llm:
        answer = await llm.chat.completions.create(
            model="tls-assistant", messages=[{"role": "user", "content": "over tls"}]
        )
        assert answer.choices[0].message.content == "Echo: over tls"
        await tls_server[0].stop()
        for _ in range(2):
            raw = await llm.chat.completions.with_raw_response.create(
                model="tls-assistant",
                messages=[{"role": "user", "content": "anyone there?"}],
                extra_headers={"x-hitl-wait": "0"},
            )
            assert raw.status_code == 202
            held = await tls_gateway.store.get_decision(
                json.loads(raw.http_response.content)["hitl"]["decision_id"]
            )
            assert held is not None and held.status is Status.PENDING_REVIEW
    assert "circuit open" in " ".join(held.reasons), held.reasons
