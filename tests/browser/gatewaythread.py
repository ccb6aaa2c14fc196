"""A real gateway (gRPC and HTTP on loopback port 0) on its own event loop in a thread.

Browser tests drive it with the synchronous Playwright API and the blocking gRPC client, so the
server needs a loop of its own; `call` runs a coroutine on that loop (to create accounts or
read the store) and returns its result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from gateway.app import Gateway
from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.testing import create_api_key
from gateway.types import Decision, Role

T = TypeVar("T")

PASSWORD = "correct horse battery"
ADMIN_PASSWORD = "admin password 123"


class GatewayThread:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.gateway = Gateway(settings)
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.api_key = ""

    def start(self) -> None:
        self.thread.start()
        self.call(self.gateway.start())
        self.api_key = self.call(create_api_key(self.gateway))

    def stop(self) -> None:
        try:
            self.call(self.gateway.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            self.pool.shutdown(wait=False, cancel_futures=True)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.http_port}"

    def add_user(self, name: str, role: Role, groups: tuple[str, ...] | None = None) -> None:
        self.call(self.gateway.accounts.create(name, role, PASSWORD, groups))

    def decide(self, application: str, input: dict[str, Any], wait: float = 0.0) -> Decision:
        target = f"127.0.0.1:{self.gateway.grpc_port}"
        with GatewayClient(target, api_key=self.api_key) as client:
            return client.decide(application, input, wait=wait)

    def decide_in_background(
        self, application: str, input: dict[str, Any], wait: float
    ) -> Future[Decision]:
        """A Decide call that blocks (in a worker thread) until people decide or ``wait``."""
        return self.pool.submit(self.decide, application, input, wait)
