"""Spans exported over OTLP gRPC to a real receiver, and their trace ids in the audit trail."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as gpb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc
from tests.integration.serverproc import ServerProcess, cli

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[trace_pb2.Span] = []

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    server = grpc.aio.server()
    rec = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(rec, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield rec, port
    finally:
        await server.stop(0)


@pytest.fixture
def exporting_gateway(
    receiver: tuple[Receiver, int], tmp_path: Path, policies_dir: Path
) -> Iterator[tuple[ServerProcess, str]]:
    """A gateway subprocess exporting to the receiver, and an application key for it."""
    _, port = receiver
    data = tmp_path / "var"
    made = cli(
        "keys",
        "create",
        "--data-dir",
        str(data),
        "--policies",
        str(policies_dir),
        "--app",
        "t-echo",
    )
    assert made.returncode == 0, made.stderr
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    server = ServerProcess(data, policies_dir, env=env)
    server.start()
    try:
        yield server, made.stdout.strip()
    finally:
        server.close()


async def _decide(port: int, key: str, wait: float) -> gpb.Decision:
    req = gpb.DecideRequest(application="t-echo")
    req.input.update({"score": 0.5})
    req.wait.FromNanoseconds(int(wait * 1e9))
    md = (
        ("authorization", f"Bearer {key}"),
        ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        result: gpb.Decision = await gateway_pb2_grpc.DecisionGatewayStub(channel).Decide(
            req, metadata=md
        )
        return result


async def test_decide_span_tree_shares_the_audit_trace_id(
    receiver: tuple[Receiver, int], exporting_gateway: tuple[ServerProcess, str]
) -> None:
    """One Decide exports a server span under the caller's traceparent with classify, model,
    commit and review-wait children; its audit event carries the same trace and span ids."""
    rec, _ = receiver
    server, key = exporting_gateway
    decision = await _decide(server.port, key, wait=0.2)
    assert decision.status == gpb.PENDING_REVIEW

    deadline = time.monotonic() + 15
    names = {"classify", "model", "commit", "review.wait"}
    while {s.name for s in rec.spans} < names | {"hitl.gateway.v1.DecisionGateway/Decide"}:
        assert time.monotonic() < deadline, [s.name for s in rec.spans]
        await asyncio.sleep(0.05)

    ours = [s for s in rec.spans if s.trace_id.hex() == TRACE_ID]
    (root,) = [s for s in ours if s.name == "hitl.gateway.v1.DecisionGateway/Decide"]
    assert root.parent_span_id.hex() == PARENT_ID
    assert root.kind == trace_pb2.Span.SPAN_KIND_SERVER
    children = {s.name: s for s in ours if s.parent_span_id == root.span_id}
    assert set(children) == names
    model = children["model"]
    assert {a.key: a.value.string_value for a in model.attributes}["backend"] == "echo"
    # Children run in order inside their parent.
    assert children["classify"].end_time_unix_nano <= model.start_time_unix_nano
    assert model.end_time_unix_nano <= children["commit"].start_time_unix_nano
    assert children["commit"].end_time_unix_nano <= children["review.wait"].start_time_unix_nano
    assert root.start_time_unix_nano <= children["classify"].start_time_unix_nano
    assert children["review.wait"].end_time_unix_nano <= root.end_time_unix_nano

    assert decision.trace_id == TRACE_ID
    trail = cli(
        "audit",
        "trail",
        decision.id,
        "--format",
        "jsonl",
        "--db",
        str(server.data_dir / "gateway.db"),
    )
    assert trail.returncode == 0, trail.stderr
    (event,) = [json.loads(line) for line in trail.stdout.splitlines()]
    assert event["trace_id"] == TRACE_ID
    # The event was written inside the Decide server span, which is what it names.
    assert event["span_id"] == root.span_id.hex()
