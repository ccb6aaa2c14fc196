"""Health, readiness and reflection, as Kubernetes and grpcurl use them."""

from __future__ import annotations

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.app import Gateway


async def test_grpc_health_serving(gateway: Gateway) -> None:
    """The standard health service reports SERVING for the server and the gateway service."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "hitl.gateway.v1.DecisionGateway"):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_services(gateway: Gateway) -> None:
    """Server reflection lists the gateway, health and reflection services (grpcurl list)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in stub.ServerReflectionInfo(iter([request])):
            names = {s.name for s in reply.list_services_response.service}
            break
    assert {"hitl.gateway.v1.DecisionGateway", "grpc.health.v1.Health"} <= names


async def test_http_health_and_readiness(gateway: Gateway) -> None:
    """HTTP /healthz and /readyz answer, readiness listing the store and every backend."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["store"] is True and checks["backend:credit-scorer"] is True
