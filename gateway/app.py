"""Composition root: the only place that wires concrete pieces together.

gRPC and HTTP share one event loop. ``start()`` and ``stop()`` are the only lifecycle; ``stop()``
is idempotent: it stops taking calls, lets in-flight ones finish within the grace period, then
flushes the store's writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import grpc
import structlog
import uvicorn
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway._pb.hitl.gateway.v1 import gateway_pb2
from gateway.api.decisions import SERVICE, DecisionGatewayServicer
from gateway.api.http import health_app
from gateway.backends.protocol import ModelBackend
from gateway.backends.registry import build_backend
from gateway.config import Settings
from gateway.core.auth import KeyAuthenticator
from gateway.core.limits import InputLimits
from gateway.core.notifier import Notifier
from gateway.core.pipeline import DecisionPipeline
from gateway.core.reviews import ReviewService
from gateway.policy import PolicySet, load_policies
from gateway.store import open_store
from gateway.store.protocol import Store
from gateway.telemetry.tracing import setup_tracing

log = structlog.get_logger("gateway.app")


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: the gateway owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Gateway:
    def __init__(self, settings: Settings, *, limits: InputLimits | None = None) -> None:
        self.settings = settings
        self.limits = limits or InputLimits()
        self.grpc_port = 0
        self.http_port = 0
        self._started = False
        self._stopped = False
        self._grpc: grpc.aio.Server | None = None
        self._http: _EmbeddedUvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._backends: dict[str, ModelBackend] = {}
        self._store: Store | None = None
        self.notifier = Notifier()

    # The core objects, for the reviewer UI and for tests that drive the real services.
    policies: PolicySet
    store: Store
    pipeline: DecisionPipeline
    reviews: ReviewService
    auth: KeyAuthenticator

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        s = self.settings
        setup_tracing()
        self.policies = load_policies(s.policies)
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self._store = self.store = open_store(s.store_url)
        await self.store.start()
        for name, spec in self.policies.backends.items():
            backend = build_backend(spec)
            await backend.start()
            self._backends[name] = backend
        self.pipeline = DecisionPipeline(
            policies=self.policies,
            backends=self._backends,
            store=self.store,
            notifier=self.notifier,
        )
        self.reviews = ReviewService(self.store, self.notifier)
        self.auth = KeyAuthenticator(self.store)
        await self._start_grpc()
        await self._start_http()
        log.info(
            "gateway.started",
            grpc=f"{s.grpc_host}:{self.grpc_port}",
            http=f"{s.http_host}:{self.http_port}",
            policy_version=self.policies.version,
            store=s.store_url.split("://", 1)[0],
        )

    async def _start_grpc(self) -> None:
        s = self.settings
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", s.max_message_bytes),
                ("grpc.max_send_message_length", s.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=s.max_concurrent_rpcs,
        )
        servicer = DecisionGatewayServicer(self.pipeline, self.limits)
        server.add_generic_rpc_handlers((servicer.handler(self.auth),))
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (
            gateway_pb2.DESCRIPTOR.services_by_name["DecisionGateway"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        self.grpc_port = server.add_insecure_port(f"{s.grpc_host}:{s.grpc_port}")
        if self.grpc_port == 0:
            raise OSError(f"cannot bind gRPC to {s.grpc_host}:{s.grpc_port}")
        await server.start()
        self._grpc = server
        serving = health_pb2.HealthCheckResponse.SERVING
        await self._health.set("", serving)
        await self._health.set(SERVICE, serving)

    async def _start_http(self) -> None:
        s = self.settings
        sock = socket.socket(
            socket.AF_INET6 if ":" in s.http_host else socket.AF_INET, socket.SOCK_STREAM
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((s.http_host, s.http_port))
        self.http_port = sock.getsockname()[1]
        config = uvicorn.Config(
            health_app(self.readiness),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(s.shutdown_grace),
        )
        self._http = _EmbeddedUvicorn(config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]))
        while not self._http.started:
            if self._http_task.done():
                await self._http_task
                raise OSError("HTTP server failed to start")
            await asyncio.sleep(0.01)

    async def readiness(self) -> dict[str, bool]:
        checks = {"store": self._store is not None and not self._stopped}
        for name, backend in self._backends.items():
            checks[f"backend:{name}"] = await backend.ready()
        return checks

    async def stop(self) -> None:
        """Stop taking calls, finish in-flight ones, flush the store. Idempotent."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace
        self.notifier.close()  # waiting callers answer now, with the state as it is
        if self._grpc is not None:
            await self._health.enter_graceful_shutdown()
            await self._grpc.stop(grace)
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await self._http_task
        for backend in self._backends.values():
            await backend.stop()
        if self._store is not None:
            await self._store.stop()
        log.info("gateway.stopped")

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
