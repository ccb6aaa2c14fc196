"""Builds the gRPC method handlers with the cross-cutting concerns wrapped around each method.

One factory applies, in order: request parsing that turns malformed bytes into INVALID_ARGUMENT
(grpc's own deserializer failure would surface as INTERNAL, and interceptors never see it), the
trace span continuing an incoming ``traceparent``, logging context, authentication, the bounds
on calls in progress (`gateway.core.slots`), and the error table. Wrapping the behaviours
directly costs less per call than a grpc.aio interceptor chain and keeps the authenticated
principal a plain argument instead of ambient state.

A call the client cancels, or whose deadline passes, is counted in ``hitl_rpc_errors_total``
and logged like a refusal: grpc.aio just cancels the handler's task, and nothing else sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf.message import DecodeError, Message
from opentelemetry import propagate, trace

from gateway.api.errors import status_for, trailers_for
from gateway.api.tls import client_common_name
from gateway.core.auth import KeyAuthenticator, Principal
from gateway.errors import InvalidInput, TooLarge
from gateway.telemetry import metrics

log = structlog.get_logger("gateway.api")
_tracer = trace.get_tracer("gateway.api")

Req = TypeVar("Req", bound=Message)
Unary = Callable[[Any, Principal, grpc.aio.ServicerContext[Any, Any]], Awaitable[Message]]
Streaming = Callable[[Any, Principal, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Message]]
Public = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Message]]


class Malformed:
    """Stands in for a request whose bytes did not parse."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _parser(message: type[Message]) -> Callable[[bytes], Message | Malformed]:
    from_string = message.FromString

    def parse(data: bytes) -> Message | Malformed:
        try:
            return from_string(data)
        except DecodeError as exc:
            return Malformed(str(exc))
        except RecursionError:
            return Malformed("message nested too deeply")

    return parse


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            out[key] = value
    return out


def _cancelled(context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
    """Count and log a call that ended because its client went away or its deadline passed."""
    remaining = context.time_remaining()
    code = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
    metrics.rpc_error(method, code)
    log.info("rpc.cancelled", method=method, code=code)


async def _fail(
    context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, method: str
) -> None:
    code = status_for(exc)
    metrics.rpc_error(method, code.name if code is not None else "INTERNAL")
    if code is None:
        log.error("rpc.internal_error", method=method, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the gateway log")
    trailers = trailers_for(exc)
    if trailers:
        context.set_trailing_metadata(trailers)
    if code is not grpc.StatusCode.INTERNAL:
        log.info("rpc.refused", method=method, code=code.name if code else "", error=str(exc))
    assert code is not None
    await context.abort(code, str(exc))


class _Call:
    """Per-method wrapper: parse check, span, auth and error mapping around a behaviour."""

    def __init__(
        self, method: str, auth: KeyAuthenticator, roles: frozenset[str] | None = None
    ) -> None:
        self.method = method
        self.auth = auth
        self.roles = roles

    async def principal(
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any], md: dict[str, str]
    ) -> Principal:
        header = md.get("authorization")
        principal = await self.auth.admit(
            header, client_common_name(context) if header is None else None
        )
        if self.roles is not None:
            principal.require_role(self.roles)
        if isinstance(request, Malformed):
            if "MaxDepth" in request.error:
                raise TooLarge("request", "nested too deeply for the protobuf parser")
            raise InvalidInput("request", f"malformed: {request.error}")
        return principal


def unary(
    method: str, behaviour: Unary, auth: KeyAuthenticator, roles: frozenset[str] | None = None
) -> Callable[..., Any]:
    call = _Call(method, auth, roles)

    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        md = _metadata(context)
        parent = propagate.extract(md) if "traceparent" in md else None
        slots = call.auth.slots
        with _tracer.start_as_current_span(method, context=parent, kind=trace.SpanKind.SERVER):
            try:
                with slots.call():
                    principal = await call.principal(request, context, md)
                    with slots.key(principal.key_id):
                        return await behaviour(request, principal, context)
            except grpc.aio.AbortError:
                raise
            except asyncio.CancelledError:
                _cancelled(context, method)
                raise
            except Exception as exc:
                await _fail(context, exc, method)
                raise  # unreachable: abort raises

    return handler


def streaming(
    method: str, behaviour: Streaming, auth: KeyAuthenticator, roles: frozenset[str] | None = None
) -> Callable[..., Any]:
    call = _Call(method, auth, roles)

    async def handler(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Message]:
        md = _metadata(context)
        parent = propagate.extract(md) if "traceparent" in md else None
        slots = call.auth.slots
        with _tracer.start_as_current_span(method, context=parent, kind=trace.SpanKind.SERVER):
            try:
                with slots.call():
                    principal = await call.principal(request, context, md)
                    with slots.key(principal.key_id):
                        async for item in behaviour(request, principal, context):
                            yield item
            except grpc.aio.AbortError:
                raise
            except asyncio.CancelledError:
                _cancelled(context, method)
                raise
            except Exception as exc:
                await _fail(context, exc, method)

    return handler


def unary_handler(
    method: str,
    behaviour: Unary,
    auth: KeyAuthenticator,
    req: type[Message],
    roles: frozenset[str] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """``roles``: when set, only keys with one of these roles may call (else PERMISSION_DENIED)."""
    return grpc.unary_unary_rpc_method_handler(
        unary(method, behaviour, auth, roles),
        request_deserializer=_parser(req),
        response_serializer=_serialize,
    )


def streaming_handler(
    method: str,
    behaviour: Streaming,
    auth: KeyAuthenticator,
    req: type[Message],
    roles: frozenset[str] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.unary_stream_rpc_method_handler(
        streaming(method, behaviour, auth, roles),
        request_deserializer=_parser(req),
        response_serializer=_serialize,
    )


def public_unary_handler(
    method: str, behaviour: Public, req: type[Message]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler without authentication or a trace span, for health and liveness probes.

    Only for methods that reveal nothing an unauthenticated ``grpc.health.v1.Health`` check
    does not already reveal. Malformed bytes and domain errors map as for every other method.
    """

    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        try:
            if isinstance(request, Malformed):
                raise InvalidInput("request", f"malformed: {request.error}")
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            _cancelled(context, method)
            raise
        except Exception as exc:
            await _fail(context, exc, method)
            raise  # unreachable: abort raises

    return grpc.unary_unary_rpc_method_handler(
        handler, request_deserializer=_parser(req), response_serializer=_serialize
    )


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
