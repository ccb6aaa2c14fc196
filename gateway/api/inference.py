"""gRPC servicer for ``inference.GRPCInferenceService``: the gateway as a transparent OIP proxy.

Existing Open Inference Protocol clients (tritonclient, KServe) point at the gateway instead of
their model server. ModelInfer goes through the decision pipeline (``InferenceService``); the
decision id is always in the trailing metadata ``x-hitl-decision-id``.

Authentication: ModelInfer, ModelReady and ModelMetadata need an ``app`` key allowed for the
model's application, as Decide does: they name an application's model and its tensor signature,
and a key must not learn about applications it may not use. ServerLive, ServerReady and
ServerMetadata answer without a key, like ``grpc.health.v1.Health``: orchestrators and client
libraries probe them before they have credentials, and they reveal nothing about applications.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import grpc

from gateway._pb.inference import grpc_service_pb2 as pb
from gateway.api import inference_converters as conv
from gateway.api.errors import DECISION_ID_KEY
from gateway.api.handlers import public_unary_handler, unary_handler
from gateway.core.auth import APP_ROLES, KeyAuthenticator, Principal
from gateway.core.inference import DEFAULT_MAX_WAIT, InferenceService
from gateway.core.limits import InputLimits

SERVICE = "inference.GRPCInferenceService"
# Answer a held decision this long before the caller's deadline, so the caller gets our
# DEADLINE_EXCEEDED with the decision id rather than grpc's own without it.
_DEADLINE_MARGIN = 0.05


def _version() -> str:
    try:
        return metadata.version("hitl-gateway")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


class InferenceServicer:
    def __init__(
        self,
        service: InferenceService,
        limits: InputLimits,
        *,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        self._service = service
        self._limits = limits
        self._max_wait = max_wait
        self._server_metadata = pb.ServerMetadataResponse(name="hitl-gateway", version=_version())

    async def model_infer(
        self,
        request: pb.ModelInferRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ModelInferResponse:
        remaining = context.time_remaining()
        wait = self._max_wait
        if remaining is not None:
            wait = min(wait, max(remaining - _DEADLINE_MARGIN, 0.0))
        cmd = conv.infer_command(request, wait, self._limits)
        result = await self._service.infer(cmd, principal)
        context.set_trailing_metadata(((DECISION_ID_KEY, result.decision.id),))
        return conv.infer_response(request, result)

    async def model_ready(
        self,
        request: pb.ModelReadyRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ModelReadyResponse:
        ready = await self._service.model_ready(request.name, request.version, principal)
        return pb.ModelReadyResponse(ready=ready)

    async def model_metadata(
        self,
        request: pb.ModelMetadataRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ModelMetadataResponse:
        app = self._service.model(request.name, request.version, principal)
        assert app.oip is not None  # the service only finds applications with a mapping
        return conv.model_metadata(request.name, app.backend.version, app.oip)

    async def server_live(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=await self._service.server_ready())

    async def server_metadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerMetadataResponse:
        return self._server_metadata

    def handler(self, auth: KeyAuthenticator) -> grpc.GenericRpcHandler:
        def name(method: str) -> str:
            return f"{SERVICE}/{method}"

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "ModelInfer": unary_handler(
                    name("ModelInfer"), self.model_infer, auth, pb.ModelInferRequest, APP_ROLES
                ),
                "ModelReady": unary_handler(
                    name("ModelReady"), self.model_ready, auth, pb.ModelReadyRequest, APP_ROLES
                ),
                "ModelMetadata": unary_handler(
                    name("ModelMetadata"),
                    self.model_metadata,
                    auth,
                    pb.ModelMetadataRequest,
                    APP_ROLES,
                ),
                "ServerLive": public_unary_handler(
                    name("ServerLive"), self.server_live, pb.ServerLiveRequest
                ),
                "ServerReady": public_unary_handler(
                    name("ServerReady"), self.server_ready, pb.ServerReadyRequest
                ),
                "ServerMetadata": public_unary_handler(
                    name("ServerMetadata"), self.server_metadata, pb.ServerMetadataRequest
                ),
            },
        )
