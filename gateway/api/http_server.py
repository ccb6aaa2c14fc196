"""The gateway's HTTP server: uvicorn in the gateway's own event loop, on a socket bound here.

Binding the socket ourselves gives the real port before serving starts (port 0 in tests) and
keeps uvicorn from installing signal handlers: the gateway owns signals and shutdown order.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from gateway.api.connections import ConnectionLimits, protocol_class
from gateway.config import Settings


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: the gateway owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """Serves one ASGI app on ``http_host:http_port`` with the gateway's connection limits."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self, app: ASGIApp) -> None:
        """Bind, start serving, and return once uvicorn accepts connections.

        Raises:
            OSError: The address cannot be bound or the server failed to start.
        """
        s = self._settings
        sock = socket.socket(
            socket.AF_INET6 if ":" in s.http_host else socket.AF_INET, socket.SOCK_STREAM
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if s.workers > 1:  # worker processes share the port; the kernel spreads connections
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((s.http_host, s.http_port))
        self.port = sock.getsockname()[1]
        limits = ConnectionLimits(
            idle_timeout=s.http_idle_timeout,
            header_timeout=s.http_header_timeout,
            per_client=s.http_max_connections_per_client,
            total=s.http_max_connections,
        )
        config = uvicorn.Config(
            app,
            # Idle, header-read and per-address limits uvicorn's own protocols lack.
            http=protocol_class(limits),
            timeout_keep_alive=max(1, math.ceil(s.http_idle_timeout)),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(s.shutdown_grace),
            ssl_certfile=s.tls_cert,
            ssl_keyfile=s.tls_key,
            # The client address is the TCP peer, never an X-Forwarded-For value: the SSO
            # trusted-proxy check and the sign-in throttle must not believe a claimed address.
            proxy_headers=False,
        )
        server = self._server = _EmbeddedUvicorn(config)
        task = self._task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                raise OSError("HTTP server failed to start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop accepting, let requests in progress finish within the grace period. Idempotent."""
        server, task = self._server, self._task
        self._server = self._task = None
        if server is not None and task is not None:
            server.should_exit = True
            await task
