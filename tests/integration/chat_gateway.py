"""Fixtures for tests that call the gateway's OpenAI-compatible endpoint: a real chat server
(`tests.integration.chat_server`) behind a real gateway on loopback port 0."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import Settings
from gateway.testing import create_api_key
from tests.integration.chat_server import MODEL, ChatServer
from tests.modelrisk_helpers import approve_in_gateway

ROOT = Path(__file__).resolve().parents[2]

POLICY = """
backends:
  - {{name: bank-llm, kind: openai, target: "{url}", model: {model}, version: "1",
     api_key_env: HITL_TEST_LLM_KEY, timeout: 2s}}
  - {{name: partner-llm, kind: openai, target: "{url}", model: {model}, version: "1",
     third_party: true, send_fields: [messages.system, messages.user]}}
applications:
  - id: t-assistant
    tier: limited
    backend: bank-llm
    sensitive_fields: [metadata.customer_name]
    route:
      - {{when: "output.content.contains('forbidden')", action: reject, reason: "forbidden topic"}}
      - {{when: "true", action: approve}}
    chat:
      model_name: bank-assistant
      approve_tools: [transfer_funds]
      max_wait: 30s
  - id: t-partner
    tier: limited
    backend: partner-llm
    route:
      - {{when: "true", action: approve}}
    chat:
      model_name: partner-assistant
"""

TRANSFER_TOOL = {
    "type": "function",
    "function": {
        "name": "transfer_funds",
        "description": "Move money to an account",
        "parameters": {
            "type": "object",
            "properties": {"to": {"type": "string"}, "amount": {"type": "number"}},
            "required": ["to", "amount"],
        },
    },
}


@pytest.fixture
async def chat_server() -> AsyncIterator[ChatServer]:
    server = ChatServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def chat_gateway(
    tmp_path: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Gateway]:
    monkeypatch.setenv("HITL_TEST_LLM_KEY", "sk-test-upstream")
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    (policies / "chat.yaml").write_text(POLICY.format(url=chat_server.url, model=MODEL))
    settings = Settings(
        grpc_port=0,
        http_port=0,
        data_dir=tmp_path / "var",
        policies=policies,
        log_level="warning",
        shutdown_grace=1.0,
    )
    async with Gateway(settings) as gw:
        # A bank's model version must be approved in the inventory to decide automatically.
        await approve_in_gateway(gw, "bank-llm", MODEL, "1")
        await approve_in_gateway(gw, "partner-llm", MODEL, "1")
        yield gw


@pytest.fixture
async def chat_key(chat_gateway: Gateway) -> str:
    return await create_api_key(chat_gateway, "t-assistant", "t-partner")
