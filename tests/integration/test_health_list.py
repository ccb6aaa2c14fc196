"""grpc.health.v1.Health/List answers with every reported service, and logs no error."""

from __future__ import annotations

import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from structlog.testing import capture_logs

from gateway.app import Gateway


async def test_health_list_names_every_service_serving(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """List answers SERVING for the server and the gateway service, with nothing logged as an
    error by the gateway or by grpc."""
    caplog.set_level(logging.WARNING)
    with capture_logs() as logs:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.List(health_pb2.HealthListRequest(), timeout=5)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert {name: s.status for name, s in reply.statuses.items()} == {
        "": serving,
        "hitl.gateway.v1.DecisionGateway": serving,
    }
    assert [e for e in logs if e["log_level"] in ("error", "critical", "exception")] == []
    assert [r.getMessage() for r in caplog.records] == []
