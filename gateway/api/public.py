"""The services that answer without a key: ``grpc.health.v1.Health`` and server reflection.

The health library's asyncio servicer has no ``List``; its generated base class answers it with
UNIMPLEMENTED by raising, which grpc.aio logs as a traceback. Here ``List`` answers the status of
every service the gateway reports, from the same table ``Check`` reads.

Their streams (``Health/Watch``, ``ServerReflectionInfo``) stay open as long as a client likes
and need no key, so they hold a slot of their own bound (``max_public_streams``): nobody
without a key can pile them up. ``Check`` and ``List`` hold none, so they answer while every
bound is reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from gateway.core.slots import CallSlots
from gateway.errors import TooManyCalls
from gateway.periodic import Periodic
from gateway.telemetry import metrics

log = structlog.get_logger("gateway.api")

HEALTH = "grpc.health.v1.Health"
_REFLECTION = "grpc.reflection.v1alpha.ServerReflection"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

Context = grpc.aio.ServicerContext[Any, Any]


async def _refuse(context: Context, method: str, exc: TooManyCalls) -> None:
    metrics.rpc_error(method, "RESOURCE_EXHAUSTED")
    log.info("rpc.refused", method=method, code="RESOURCE_EXHAUSTED", error=str(exc))
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))


class Health:
    """``grpc.health.v1.Health``: the library's servicer for Check and Watch, with List."""

    def __init__(self, slots: CallSlots) -> None:
        self._servicer: Any = health.aio.HealthServicer()
        self._slots = slots
        # The library keeps its table private: this one mirrors every change made through here.
        self._statuses: dict[str, int] = {"": _SERVING}
        self._shutting_down = False
        self._follower: Periodic | None = None

    async def set(self, service: str, status: int) -> None:
        if self._shutting_down:  # as the library: NOT_SERVING stays
            return
        await self._servicer.set(service, status)
        self._statuses[service] = status

    def follow(self, service: str, ready: Callable[[], Awaitable[bool]], interval: float) -> None:
        """Keep ``service`` SERVING while ``ready()`` says so, asked every ``interval`` seconds,
        until shutdown: a probe of gRPC health then sees what ``/readyz`` sees."""

        async def check() -> None:
            try:
                ok = await ready()
            except Exception as exc:  # a check that fails says "not ready"
                log.warning("health.check_failed", service=service, error=repr(exc))
                ok = False
            if self._statuses.get(service) != (status := _SERVING if ok else _NOT_SERVING):
                log.info("health.changed", service=service, serving=ok)
                await self.set(service, status)

        if self._follower is None:
            self._follower = Periodic(
                "health-follower", check, interval, failure_event="health.follow_failed"
            )
            self._follower.start()

    async def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING from now on."""
        self._shutting_down = True
        if self._follower is not None:
            await self._follower.stop()
        await self._servicer.enter_graceful_shutdown()
        self._statuses = dict.fromkeys(self._statuses, _NOT_SERVING)

    async def _check(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> health_pb2.HealthCheckResponse:
        reply: health_pb2.HealthCheckResponse = await self._servicer.Check(request, context)
        return reply

    async def _list(
        self, request: health_pb2.HealthListRequest, context: Context
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._statuses.items()
            }
        )

    async def _watch(self, request: health_pb2.HealthCheckRequest, context: Context) -> None:
        try:
            with self._slots.public_stream():
                await self._servicer.Watch(request, context)
        except TooManyCalls as exc:
            await _refuse(context, f"{HEALTH}/Watch", exc)

    def handler(self) -> grpc.GenericRpcHandler:
        check = health_pb2.HealthCheckRequest
        reply = health_pb2.HealthCheckResponse
        return grpc.method_handlers_generic_handler(
            HEALTH,
            {
                "Check": grpc.unary_unary_rpc_method_handler(
                    self._check,
                    request_deserializer=check.FromString,
                    response_serializer=reply.SerializeToString,
                ),
                "List": grpc.unary_unary_rpc_method_handler(
                    self._list,
                    request_deserializer=health_pb2.HealthListRequest.FromString,
                    response_serializer=health_pb2.HealthListResponse.SerializeToString,
                ),
                "Watch": grpc.unary_stream_rpc_method_handler(
                    self._watch,
                    request_deserializer=check.FromString,
                    response_serializer=reply.SerializeToString,
                ),
            },
        )


def reflection_handler(service_names: tuple[str, ...], slots: CallSlots) -> grpc.GenericRpcHandler:
    """Server reflection (``grpcurl list``) for ``service_names``, its streams bounded."""
    servicer: Any = reflection.aio.ReflectionServicer(service_names)
    method = f"{_REFLECTION}/ServerReflectionInfo"

    async def info(
        requests: AsyncIterator[reflection_pb2.ServerReflectionRequest], context: Context
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        try:
            with slots.public_stream():
                async for reply in servicer.ServerReflectionInfo(requests, context):
                    yield reply
        except TooManyCalls as exc:
            await _refuse(context, method, exc)

    return grpc.method_handlers_generic_handler(
        _REFLECTION,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                info,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
