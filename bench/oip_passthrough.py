"""A plain grpc.aio pass-through proxy: every call's bytes forwarded to one upstream, unparsed.

The baseline the gateway's OIP proxy path is measured against: the least a Python gRPC proxy in
front of a model server can do (no parsing, no auth, no policy, no audit).

With ``--rename FROM=TO`` it is instead the least a protocol-aware proxy does: ModelInfer
requests and responses are parsed, the model renamed, and serialized again (still no auth,
policy or audit). The benchmark reports it for context: it shows what reading the protocol
alone costs a Python proxy, before any decision is made.

    python -m bench.oip_passthrough --port 50062 --upstream 127.0.0.1:50061
    python -m bench.oip_passthrough --port 50063 --upstream 127.0.0.1:50061 --rename a=b
"""

from __future__ import annotations

import argparse
from typing import Any

import grpc

from bench.harness import run_async, serve_forever


def _identity(data: bytes) -> bytes:
    return data


class Rename:
    """ModelInfer parsed and rebuilt with the model renamed both ways."""

    def __init__(self, outer: str, inner: str) -> None:
        from gateway._pb.inference import grpc_service_pb2 as pb

        self._pb = pb
        self._outer = outer
        self._inner = inner

    def request(self, data: bytes) -> bytes:
        message = self._pb.ModelInferRequest.FromString(data)
        if message.model_name == self._outer:
            message.model_name = self._inner
        return message.SerializeToString()  # type: ignore[no-any-return]

    def response(self, data: bytes) -> bytes:
        message = self._pb.ModelInferResponse.FromString(data)
        message.model_name = self._outer
        return message.SerializeToString()  # type: ignore[no-any-return]


class Forward(grpc.GenericRpcHandler):
    def __init__(self, channel: grpc.aio.Channel, rename: Rename | None = None) -> None:
        self._channel = channel
        self._calls: dict[str, Any] = {}
        self._rename = rename

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

        rename = self._rename if method.endswith("/ModelInfer") else None

        async def forward(request: bytes, context: Any) -> bytes:
            if rename is None:
                return await call(request, timeout=context.time_remaining())  # type: ignore[no-any-return]
            answer = await call(rename.request(request), timeout=context.time_remaining())
            return rename.response(answer)

        return grpc.unary_unary_rpc_method_handler(
            forward, request_deserializer=_identity, response_serializer=_identity
        )


async def serve(port: int, upstream: str, rename: Rename | None) -> None:
    channel = grpc.aio.insecure_channel(upstream)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((Forward(channel, rename),))
    await serve_forever(server, port)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--rename", help="FROM=TO: parse ModelInfer and rename the model")
    args = parser.parse_args()
    rename = None
    if args.rename:
        outer, _, inner = args.rename.partition("=")
        rename = Rename(outer, inner)
    run_async(serve(args.port, args.upstream, rename))


if __name__ == "__main__":
    main()
