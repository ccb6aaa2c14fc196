"""A bare grpc.aio server for ``DecisionGateway/Decide`` that does nothing but answer.

It is the baseline the gateway's throughput is compared with: the same service and method name,
the same request message, and a ``Decision`` answer of similar size built from the request, on the
same event loop (uvloop) and server options as the gateway. No auth, policy, model or storage.

Run: ``python -m bench.echo_server --port 50099``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bench.harness import run_async
from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc


def _template() -> pb.Decision:
    """A decision shaped like the gateway's answer on the auto-approve path."""
    msg = pb.Decision(
        id="dec_01JQ7Z3M5X4V9K2B8N6P0R1S2T",
        tier="standard",
        status=pb.APPROVED,
        reasons=["amount <= 10000 and risk score below 0.3: auto-approved"],
        rule="route[1]",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        policy_version="sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        approvals_needed=0,
    )
    msg.model.backend = "builtin"
    msg.model.name = "credit-limit-scorecard"
    msg.model.version = "1.0.0"
    msg.model.validation = "approved"
    now = time.time()
    msg.created_at.FromNanoseconds(int(now * 1e9))
    msg.updated_at.FromNanoseconds(int(now * 1e9))
    return msg


class EchoServicer(pb_grpc.DecisionGatewayServicer):
    """Answers ``Decide`` with the template plus the request's own fields."""

    def __init__(self) -> None:
        self._template = _template()

    async def Decide(
        self, request: pb.DecideRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.Decision:
        msg = pb.Decision()
        msg.CopyFrom(self._template)
        msg.application = request.application
        msg.subject_ref = request.subject_ref
        # The request's input stands in for the model output, so the answer grows with it.
        msg.model_output.CopyFrom(request.input)
        msg.final_output.CopyFrom(request.input)
        return msg


async def serve(host: str, port: int, servicer: EchoServicer | None = None) -> int:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=2048,
    )
    pb_grpc.add_DecisionGatewayServicer_to_server(servicer or EchoServicer(), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        print(f"echo server: cannot bind {host}:{port}", file=sys.stderr)
        return 1
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    print(f"echo server serving gRPC on {host}:{bound}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1.0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    return int(run_async(serve(args.host, args.port)))


if __name__ == "__main__":
    raise SystemExit(main())
