"""``POST /v1/chat/completions`` and ``GET /v1/models``: the gateway as an OpenAI-compatible
server, so an unmodified OpenAI client reaches a model through the decision pipeline by changing
only its ``base_url`` and ``api_key`` (an application's ``hitl_…`` key).

The routes convert, await one core call (`gateway.core.chat.ChatService`) and convert back:

- released (approved, or overridden by a reviewer): the completion, or with ``stream: true``
  the same completion as ``chat.completion.chunk`` server-sent events ending ``data: [DONE]``;
- still held when the wait ends: 202 with the pending answer (`gateway.chat.response`), or for
  a stream one event carrying an ``error`` of code ``decision_pending``, which OpenAI clients
  raise as an error;
- refused: an OpenAI-style error body, ``{"error": {"message", "type", "param", "code"}}``.

How long a held call waits: the least of the caller's own read timeout (the OpenAI client
sends it as ``x-stainless-read-timeout``; any client may send ``x-hitl-wait`` in seconds), the
application's ``chat.max_wait`` and the gateway's limit. ``Idempotency-Key`` makes a repeated
call find the same decision (and its verdict, once given); ``x-hitl-requested-by`` names the
person on whose behalf the call is made.

Every answer about a decision carries its id in ``x-hitl-decision-id``.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.api.errors import DECISION_ID_KEY
from gateway.api.http_calls import guarded, read_body
from gateway.api.http_errors import HttpError, headers_for
from gateway.chat.request import RequestError, parse_request
from gateway.chat.response import completion, error_body, pending_body, sse_chunks
from gateway.core.auth import KeyAuthenticator, Principal
from gateway.core.chat import ChatCommand, ChatService
from gateway.core.limits import InputLimits, requester
from gateway.errors import DecisionPending, InvalidInput, TooLarge

__all__ = ["chat_routes"]

_WAIT_HEADERS = {"x-hitl-wait": 0.0, "x-stainless-read-timeout": 0.5}
"""Headers that bound a held call's wait, each with the margin to keep: the caller's own read
timeout is answered half a second early, so the caller reads the pending answer (with the
decision id) rather than giving up on its side without it."""


def _wait(request: Request, limit: float) -> float:
    wait = limit
    for name, margin in _WAIT_HEADERS.items():
        raw = request.headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw)
        except ValueError:
            raise InvalidInput(name, f"expected seconds, got {raw[:40]!r}") from None
        if not 0 <= seconds < float("inf"):
            raise InvalidInput(name, "expected a non-negative number of seconds")
        wait = min(wait, max(seconds - margin, 0.0))
    return wait


def _header(request: Request, name: str, limits: InputLimits) -> str:
    value = request.headers.get(name, "")
    if len(value) > limits.max_id_length:
        raise TooLarge(name, f"longer than {limits.max_id_length} characters")
    return value


class _ChatRoutes:
    def __init__(
        self, service: ChatService, auth: KeyAuthenticator, limits: InputLimits, max_body: int
    ) -> None:
        self.service = service
        self.auth = auth
        self.limits = limits
        self.max_body = max_body

    async def completions(self, request: Request) -> Response:
        return await guarded(request, self.auth, self._complete, _error_response)

    async def models(self, request: Request) -> Response:
        return await guarded(request, self.auth, self._models, _error_response)

    async def _complete(self, request: Request, principal: Principal) -> Response:
        try:
            body = parse_request(await read_body(request, self.max_body))
        except RequestError as exc:
            raise InvalidInput(exc.param, exc.message) from None
        created = int(time.time())
        cmd = ChatCommand(
            model_name=body.model,
            input=body.decision_input(),
            wait=_wait(request, self.limits.max_wait_seconds),
            idempotency_key=_header(request, "idempotency-key", self.limits),
            requested_by=requester(
                _header(request, "x-hitl-requested-by", self.limits),
                "x-hitl-requested-by",
                self.limits,
            ),
        )
        try:
            result = await self.service.complete(cmd, principal)
        except DecisionPending as exc:
            if body.stream:
                return _pending_stream(exc)
            pending = pending_body(exc.decision_id, body.model, created, exc.message)
            return JSONResponse(pending, status_code=202, headers=headers_for(exc))
        ident = f"chatcmpl-{result.decision.id}"
        headers = {DECISION_ID_KEY: result.decision.id}
        if body.stream:
            usage = body.stream_options is not None and body.stream_options.include_usage
            chunks = sse_chunks(ident, created, body.model, result.output, include_usage=usage)
            return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)
        return JSONResponse(completion(ident, created, body.model, result.output), headers=headers)

    async def _models(self, request: Request, principal: Principal) -> Response:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "hitl-gateway"}
            for name in self.service.models(principal)
        ]
        return JSONResponse({"object": "list", "data": data})


def _pending_stream(exc: DecisionPending) -> Response:
    error = error_body(exc.message, "hitl_pending", "decision_pending")
    error["error"]["decision_id"] = exc.decision_id
    event = b"data: " + JSONResponse(error).body + b"\n\n"
    return Response(
        event,
        status_code=202,
        media_type="text/event-stream",
        headers={DECISION_ID_KEY: exc.decision_id},
    )


def _error_response(exc: BaseException, mapped: HttpError | None) -> Response:
    if mapped is None:
        body = error_body("internal error; see the gateway log", "server_error", "internal_error")
        return JSONResponse(body, status_code=500)
    headers = headers_for(exc)
    message = getattr(exc, "message", str(exc))
    kind = "invalid_request_error" if mapped.status < 500 else "server_error"
    if mapped.code == "decision_rejected":
        kind = "hitl_rejected"
    param = getattr(exc, "field", None)
    body = error_body(message, kind, mapped.code, param if isinstance(param, str) else None)
    decision_id = headers.get(DECISION_ID_KEY)
    if decision_id:
        body["error"]["decision_id"] = decision_id
    return JSONResponse(body, status_code=mapped.status, headers=headers)


def chat_routes(
    service: ChatService, auth: KeyAuthenticator, limits: InputLimits, max_body: int
) -> list[Route]:
    """The OpenAI-compatible routes, to mount at the HTTP server's root."""
    routes = _ChatRoutes(service, auth, limits, max_body)
    return [
        Route("/v1/chat/completions", routes.completions, methods=["POST"]),
        Route("/v1/models", routes.models, methods=["GET"]),
    ]
