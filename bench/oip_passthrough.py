"""A plain grpc.aio pass-through proxy: every call's bytes forwarded to one upstream, unparsed.

The baseline the gateway's OIP proxy path is measured against: the least a Python gRPC proxy in
front of a model server can do (no parsing, no auth, no policy, no audit).

    python -m bench.oip_passthrough --port 50062 --upstream 127.0.0.1:50061
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2_grpc


def _identity(data: bytes) -> bytes:
    return data


class Forward(grpc.GenericRpcHandler):
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._calls: dict[str, Any] = {}

    def service(self, handler_call_details: Any) -> Any:
        method = handler_call_details.method
        if method.startswith("/grpc.health"):
            return None
        call = self._calls.get(method)
        if call is None:
            call = self._channel.unary_unary(
                method, request_serializer=_identity, response_deserializer=_identity
            )
            self._calls[method] = call

        async def forward(request: bytes, context: Any) -> bytes:
            return await call(request, timeout=context.time_remaining())  # type: ignore[no-any-return]

        return grpc.unary_unary_rpc_method_handler(
            forward, request_deserializer=_identity, response_serializer=_identity
        )


async def serve(port: int, upstream: str) -> None:
    channel = grpc.aio.insecure_channel(upstream)
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    server.add_generic_rpc_handlers((Forward(channel),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
