"""Test harness: a real MLServer subprocess, and calls to the gateway's inference service."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from gateway._pb.inference import grpc_service_pb2 as pb
from gateway._pb.inference import grpc_service_pb2_grpc as pb_grpc
from tests.integration.serverproc import free_ports

TOOLS = Path(__file__).resolve().parent


class ModelServer:
    """Seldon MLServer serving the test's scikit-learn model on fixed loopback ports."""

    def __init__(self, python: Path, model_dir: Path, reported_version: str = "") -> None:
        self.python = python
        self.model_dir = model_dir
        self.reported_version = reported_version
        """When set, the model answers as this version although found as version 1."""
        self.grpc_port, self.http_port = free_ports(2)
        self.log = model_dir.parent / "mlserver.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(self.python),
                    str(TOOLS / "serve_model.py"),
                    str(self.model_dir),
                    str(self.grpc_port),
                    str(self.http_port),
                    *([self.reported_version] if self.reported_version else []),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout: float = 90.0) -> None:
        until = time.monotonic() + timeout
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            while time.monotonic() < until:
                if self._proc is not None and self._proc.poll() is not None:
                    raise RuntimeError(f"MLServer exited: {self.log.read_text()[-3000:]}")
                try:
                    reply = await stub.ModelReady(
                        pb.ModelReadyRequest(name="scorer", version="1"), timeout=1.0
                    )
                    if reply.ready:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"MLServer not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def triton_call(
    python: Path, request: dict[str, Any], script: str = "triton_call.py"
) -> dict[str, Any]:
    """Run one tritonclient infer in the OIP environment (``script``: ``triton_call.py`` over
    gRPC, ``triton_http_call.py`` over REST); return its JSON outcome."""
    proc = await asyncio.create_subprocess_exec(
        str(python),
        str(TOOLS / script),
        json.dumps(request),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"triton_call failed ({proc.returncode}): {err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


def infer_request(model: str, **inputs: tuple[str, list[int], list[Any]]) -> pb.ModelInferRequest:
    """A ModelInferRequest with typed contents: ``name=(datatype, shape, values)``."""
    request = pb.ModelInferRequest(model_name=model)
    for name, (datatype, shape, values) in inputs.items():
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        field = {"FP64": "fp64_contents", "BYTES": "bytes_contents", "INT64": "int64_contents"}
        getattr(tensor.contents, field[datatype]).extend(values)
    return request


async def infer(
    address: str, key: str, request: pb.ModelInferRequest, timeout: float = 5.0
) -> tuple[pb.ModelInferResponse | None, grpc.StatusCode, str, str]:
    """Call the gateway; return (response, code, details, decision id from the trailers)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        call = stub.ModelInfer(
            request, metadata=(("authorization", f"Bearer {key}"),), timeout=timeout
        )
        try:
            response = await call
        except grpc.aio.AioRpcError as exc:
            trailers = dict(exc.trailing_metadata() or ())
            return (
                None,
                exc.code(),
                exc.details() or "",
                str(trailers.get("x-hitl-decision-id", "")),
            )
        trailers = dict(await call.trailing_metadata() or ())
        return response, grpc.StatusCode.OK, "", str(trailers.get("x-hitl-decision-id", ""))


def python_here() -> str:
    return sys.executable
