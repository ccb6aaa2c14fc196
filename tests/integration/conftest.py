"""Fixtures: settings -> a real gateway on loopback port 0 -> an API key -> a client."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.testing import create_api_key

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def policies_dir(tmp_path: Path) -> Path:
    """The shipped policies plus the test-only applications."""
    target = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", target, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(Path(__file__).parent / "policies" / "test-apps.yaml", target)
    return target


@pytest.fixture
def settings(tmp_path: Path, policies_dir: Path) -> Settings:
    return Settings(
        grpc_port=0,
        http_port=0,
        data_dir=tmp_path / "var",
        policies=policies_dir,
        log_level="warning",
        shutdown_grace=1.0,
    )


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    gw = Gateway(settings)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


@pytest.fixture
async def api_key(gateway: Gateway) -> str:
    return await create_api_key(gateway)


@pytest.fixture
async def client(gateway: Gateway, api_key: str) -> AsyncIterator[AsyncGatewayClient]:
    async with AsyncGatewayClient(f"127.0.0.1:{gateway.grpc_port}", api_key=api_key) as c:
        yield c
