"""The Open Inference Protocol over REST (KServe v2): the same inference core and tensor mapping
as the gRPC form (`gateway.api.inference`), for clients such as ``tritonclient.http``.

``GET /v2/health/live`` and ``/v2/health/ready`` answer without a key, like their gRPC forms;
``GET /v2/models/{name}``, ``/v2/models/{name}/ready`` and ``POST /v2/models/{name}/infer``
(each also under ``/versions/{version}``) need an ``app`` key allowed for the model's
application. Tensors are JSON (``{"name", "shape", "datatype", "data"}``, ``data`` flat or
nested row-major); Triton's binary tensor extension is accepted on input (the
``Inference-Header-Content-Length`` header), and answers are always JSON.

An answer about a decision carries its id in ``x-hitl-decision-id``. A decision still held when
the wait ends is 202 with ``{"error": ..., "decision_id": ...}`` (a client that expects 200,
like tritonclient, raises it with status 202); a refusal is 403, as the error table says.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.errors import DECISION_ID_KEY
from gateway.api.http_calls import guarded, read_body
from gateway.api.http_errors import HttpError, headers_for
from gateway.api.oip_json import infer_command, infer_response, model_metadata
from gateway.core.auth import KeyAuthenticator, Principal
from gateway.core.inference import DEFAULT_MAX_WAIT, InferenceService
from gateway.core.limits import InputLimits
from gateway.errors import InvalidInput

__all__ = ["oip_rest_routes"]

_MARGIN = 0.05


class _OipRoutes:
    def __init__(
        self,
        service: InferenceService,
        auth: KeyAuthenticator,
        limits: InputLimits,
        max_body: int,
        max_wait: float,
    ) -> None:
        self.service = service
        self.auth = auth
        self.limits = limits
        self.max_body = max_body
        self.max_wait = max_wait

    async def live(self, _: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, _: Request) -> Response:
        ready = await self.service.server_ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def metadata(self, request: Request) -> Response:
        return await guarded(request, self.auth, self._metadata, _error_response)

    async def model_ready(self, request: Request) -> Response:
        return await guarded(request, self.auth, self._model_ready, _error_response)

    async def infer(self, request: Request) -> Response:
        return await guarded(request, self.auth, self._infer, _error_response)

    async def _metadata(self, request: Request, principal: Principal) -> Response:
        name, version = _name(request)
        app = self.service.model(name, version, principal)
        assert app.oip is not None  # the service only finds applications with a mapping
        return JSONResponse(model_metadata(name, app.backend.version, app.oip))

    async def _model_ready(self, request: Request, principal: Principal) -> Response:
        name, version = _name(request)
        ready = await self.service.model_ready(name, version, principal)
        return JSONResponse({"name": name, "ready": ready}, status_code=200 if ready else 503)

    async def _infer(self, request: Request, principal: Principal) -> Response:
        name, version = _name(request)
        body = await read_body(request, self.max_body)
        header = request.headers.get("inference-header-content-length")
        wait = self.max_wait
        timeout = request.headers.get("x-hitl-wait")
        if timeout is not None:
            try:
                wait = min(wait, max(float(timeout) - _MARGIN, 0.0))
            except ValueError:
                raise InvalidInput("x-hitl-wait", "expected seconds") from None
        cmd, ident = infer_command(name, version, body, header, wait, self.limits)
        result = await self.service.infer(cmd, principal)
        answer = infer_response(name, ident, result)
        return JSONResponse(answer, headers={DECISION_ID_KEY: result.decision.id})


def _name(request: Request) -> tuple[str, str]:
    return request.path_params["name"], request.path_params.get("version", "")


def _error_response(exc: BaseException, mapped: HttpError | None) -> Response:
    if mapped is None:
        return JSONResponse({"error": "internal error; see the gateway log"}, status_code=500)
    headers = headers_for(exc)
    body: dict[str, Any] = {"error": getattr(exc, "message", str(exc)), "code": mapped.code}
    if DECISION_ID_KEY in headers:
        body["decision_id"] = headers[DECISION_ID_KEY]
    return JSONResponse(body, status_code=mapped.status, headers=headers)


def oip_rest_routes(
    service: InferenceService,
    auth: KeyAuthenticator,
    limits: InputLimits,
    max_body: int,
    max_wait: float = DEFAULT_MAX_WAIT,
) -> list[Route]:
    """The KServe v2 REST routes, to mount at the HTTP server's root."""
    r = _OipRoutes(service, auth, limits, max_body, max_wait)
    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    return [
        Route("/v2/health/live", r.live, methods=["GET"]),
        Route("/v2/health/ready", r.ready, methods=["GET"]),
        *(Route(p, r.metadata, methods=["GET"]) for p in (model, versioned)),
        *(Route(f"{p}/ready", r.model_ready, methods=["GET"]) for p in (model, versioned)),
        *(Route(f"{p}/infer", r.infer, methods=["POST"]) for p in (model, versioned)),
    ]
