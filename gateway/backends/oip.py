"""Backends that speak the Open Inference Protocol v2 over gRPC (Triton, KServe, MLServer…).

``OipBackend`` owns what belongs to one remote server: the channel (optionally TLS), the
circuit breaker, retries of UNAVAILABLE within the call's deadline, and readiness.
``OipApplicationModel`` is one application's view of it: the application's tensor mapping turns
its input fields into named tensors and the answer's tensors back into output fields. Several
applications may share one backend, and so its channel and circuit.

Version pinning: the policy pins the model version. Every request names it, and every answer
must report it (``model_version`` of ModelInferResponse); an answer under another version (or
none) is a `ModelVersionMismatch`, a model error that fails closed, counted and audited with the
decision. Readiness asks ModelMetadata as well: a server whose metadata lists versions without
the pinned one is not ready. A server that does not implement ModelMetadata is judged by
ModelReady and its answers alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import structlog
from opentelemetry import propagate

from gateway._pb.inference import grpc_service_pb2 as pb
from gateway._pb.inference import grpc_service_pb2_grpc as pb_grpc
from gateway.backends.breaker import CircuitBreaker
from gateway.backends.protocol import ModelError, ModelVersionMismatch
from gateway.backends.retry import backoff_delays
from gateway.oip.tensors import Tensor, TensorError, decode, encode, project
from gateway.oip.wire import read_tensor, write_contents
from gateway.policy import BackendSpec, OipMapping
from gateway.telemetry import metrics
from gateway.types import JSONObject, ModelRef

__all__ = ["OipApplicationModel", "OipBackend"]

log = structlog.get_logger("gateway.backends.oip")

# Statuses that say the server (not this request) is in trouble: they count toward opening the
# circuit. INVALID_ARGUMENT and the like prove the server is up, and a caller must not be able
# to open the circuit for everyone with bad input.
_BACKEND_FAILURES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.ABORTED,
    }
)
# Leave this much of the pipeline's timeout to the gRPC deadline's own expiry, so that a slow
# backend is seen as DEADLINE_EXCEEDED (and counted) rather than as a cancelled call.
_DEADLINE_MARGIN = 0.01
# Don't start another attempt with less than this left before the deadline.
_MIN_ATTEMPT = 0.005
_READY_TIMEOUT = 1.0
# A restarted backend should be found again within about a second, not after grpc's default
# reconnect backoff (which grows to two minutes).
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


class OipBackend:
    """One remote Open Inference Protocol server and the model it serves for the gateway."""

    def __init__(self, spec: BackendSpec) -> None:
        if spec.target is None:
            raise ValueError(f"backend {spec.name!r}: an oip backend needs a target")
        self.spec = spec
        self.breaker = CircuitBreaker(spec.circuit_failures, spec.circuit_cooldown)
        # The policy loader has already checked the CA file (so `policy check` reports a bad
        # one); it is read once, when the backend is built.
        self._roots = Path(spec.tls_ca).read_bytes() if spec.tls and spec.tls_ca else None
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.GRPCInferenceServiceStub | None = None
        self._metadata_mismatch = False

    @property
    def ref(self) -> ModelRef:
        return self.spec.ref()

    async def start(self) -> None:
        if self._channel is not None:
            return
        spec = self.spec
        assert spec.target is not None
        if spec.tls:
            creds = grpc.ssl_channel_credentials(root_certificates=self._roots)
            self._channel = grpc.aio.secure_channel(spec.target, creds, options=_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.insecure_channel(spec.target, options=_CHANNEL_OPTIONS)
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)

    async def stop(self) -> None:
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()

    async def ready(self) -> bool:
        """Whether the server says the model (at the policy's version) is ready, and its
        metadata, when it gives any, lists the pinned version."""
        stub = self._stub
        if stub is None:
            return False
        spec = self.spec
        request = pb.ModelReadyRequest(name=spec.model, version=spec.version)
        try:
            response = await stub.ModelReady(request, timeout=_READY_TIMEOUT)
        except grpc.aio.AioRpcError:
            return False
        if not response.ready:
            return False
        asked = pb.ModelMetadataRequest(name=spec.model, version=spec.version)
        try:
            metadata = await stub.ModelMetadata(asked, timeout=_READY_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            return exc.code() is grpc.StatusCode.UNIMPLEMENTED
        versions = list(metadata.versions)
        mismatch = bool(versions) and spec.version not in versions
        if mismatch:
            metrics.model_version_mismatch(spec.name, "ready")
            if not self._metadata_mismatch:
                log.error(
                    "model.version_mismatch",
                    backend=spec.name,
                    model=spec.model,
                    pinned=spec.version,
                    reported=versions,
                )
        self._metadata_mismatch = mismatch
        return not mismatch

    def check_version(self, response: pb.ModelInferResponse) -> None:
        """Raise `ModelVersionMismatch` (counted) unless ``response`` reports the pinned
        version."""
        spec = self.spec
        if response.model_version == spec.version:
            return
        metrics.model_version_mismatch(spec.name, "infer")
        log.error(
            "model.version_mismatch",
            backend=spec.name,
            model=spec.model,
            pinned=spec.version,
            reported=response.model_version,
        )
        raise ModelVersionMismatch(spec.name, spec.model, spec.version, response.model_version)

    async def predict(self, inputs: JSONObject, *, timeout: float) -> JSONObject:
        """Never called: applications reach this backend through ``bind`` (their mapping).

        The policy loader refuses an application on an oip backend without a tensor mapping.
        """
        raise ModelError(f"{self.spec.name}: no tensor mapping for this application")

    def bind(self, mapping: OipMapping) -> OipApplicationModel:
        """The ``ModelBackend`` one application calls, with that application's mapping."""
        return OipApplicationModel(self, mapping)

    async def infer(self, request: pb.ModelInferRequest, timeout: float) -> pb.ModelInferResponse:
        """Call ModelInfer within ``timeout`` seconds; raise ModelError on any failure.

        UNAVAILABLE is retried with backoff while the deadline allows; an open circuit fails at
        once.
        """
        stub = self._stub
        name = self.spec.name
        if stub is None:
            raise ModelError(f"{name}: backend not started")
        breaker = self.breaker
        if not breaker.allow():
            raise ModelError(f"{name}: circuit open, next try in {breaker.retry_in():.1f}s")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout - _DEADLINE_MARGIN, _MIN_ATTEMPT)
        delays = backoff_delays()
        attempts = 0
        try:
            while True:
                attempts += 1
                try:
                    response: pb.ModelInferResponse = await stub.ModelInfer(
                        request, timeout=deadline - loop.time(), metadata=_trace_metadata()
                    )
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                    if code is grpc.StatusCode.UNAVAILABLE:
                        delay = next(delays)
                        if loop.time() + delay + _MIN_ATTEMPT < deadline:
                            await asyncio.sleep(delay)
                            continue
                    if code in _BACKEND_FAILURES:
                        breaker.failure()
                    else:
                        breaker.success()
                    raise ModelError(
                        f"{name}: {code.name} after {attempts} attempt(s): {exc.details()}"
                    ) from None
                breaker.success()
                return response
        except asyncio.CancelledError:
            breaker.release()
            raise


class OipApplicationModel:
    """A ``ModelBackend``: one application's tensor mapping over a shared ``OipBackend``.

    Only the backend's ``send_fields`` (when listed) ever leave the gateway: the input is cut
    down to them before any tensor is built.
    """

    __slots__ = ("_backend", "_inputs", "_mapping", "_outputs")

    def __init__(self, backend: OipBackend, mapping: OipMapping) -> None:
        self._backend = backend
        self._mapping = mapping
        sent = backend.spec.send_fields
        # With send_fields, only the tensors made of those fields go to the model; the others
        # exist for the gateway's own callers and policies (the loader refuses mixed tensors).
        self._inputs = tuple(
            t
            for t in mapping.inputs
            if not sent or all(_inside(p, sent) for p in (t.fields or (t.field or "",)))
        )
        self._outputs = [
            pb.ModelInferRequest.InferRequestedOutputTensor(name=t.name) for t in mapping.outputs
        ]

    @property
    def ref(self) -> ModelRef:
        return self._backend.ref

    async def start(self) -> None:
        return None  # the shared backend's lifecycle is its own

    async def stop(self) -> None:
        return None

    async def ready(self) -> bool:
        return await self._backend.ready()

    async def predict(self, inputs: JSONObject, *, timeout: float) -> JSONObject:
        spec = self._backend.spec
        if spec.send_fields:
            inputs = project(inputs, spec.send_fields)
        try:
            tensors = encode(inputs, self._inputs)
        except TensorError as exc:
            raise ModelError(f"{spec.name}: input {exc.field}: {exc.message}") from None
        request = pb.ModelInferRequest(
            model_name=spec.model, model_version=spec.version, outputs=self._outputs
        )
        for tensor in tensors:
            write_contents(request.inputs.add(), tensor)
        response = await self._backend.infer(request, timeout)
        self._backend.check_version(response)
        try:
            return decode(_response_tensors(response), self._mapping.outputs, strict=False)
        except TensorError as exc:
            raise ModelError(f"{spec.name}: output {exc.field}: {exc.message}") from None


def _inside(path: str, sent: tuple[str, ...]) -> bool:
    return any(path == s or path.startswith(s + ".") for s in sent)


def _trace_metadata() -> tuple[tuple[str, str], ...]:
    """W3C ``traceparent`` of the current span, so the model server's spans join the trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


def _response_tensors(response: pb.ModelInferResponse) -> dict[str, Tensor]:
    raw = response.raw_output_contents
    out: dict[str, Tensor] = {}
    for i, tensor in enumerate(response.outputs):
        contents = raw[i] if i < len(raw) else None
        out[tensor.name] = read_tensor(tensor, contents, f"outputs[{i}]")
    return out
