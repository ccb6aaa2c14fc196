"""A minimal Open Inference Protocol model server for benchmarks: a fixed linear score.

``predict = 0.5 * features[0] + 0.4 * features[1]`` as an FP64 [1, 1] tensor, so the answer
depends on the request and the gateway's auto-approve rule can match. Serves gRPC health too,
so the benchmark's readiness check works the same for every process.

    python -m bench.oip_model_server --port 50061
"""

from __future__ import annotations

import argparse
import struct
from typing import Any

import grpc

from bench.harness import run_async, serve_forever
from gateway._pb.inference import grpc_service_pb2 as pb
from gateway._pb.inference import grpc_service_pb2_grpc as pb_grpc


class LinearModel(pb_grpc.GRPCInferenceServiceServicer):
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> Any:
        tensor = request.inputs[0]
        if request.raw_input_contents:
            x1, x2 = struct.unpack("<2d", request.raw_input_contents[0])
        else:
            x1, x2 = tensor.contents.fp64_contents
        out = pb.ModelInferResponse(model_name=request.model_name, model_version="1")
        out.outputs.add(name="predict", datatype="FP64", shape=[1, 1])
        out.raw_output_contents.append(struct.pack("<d", 0.5 * x1 + 0.4 * x2))
        return out

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> Any:
        return pb.ModelReadyResponse(ready=True)


async def serve(port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(LinearModel(), server)
    await serve_forever(server, port)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_async(serve(args.port))


if __name__ == "__main__":
    main()
