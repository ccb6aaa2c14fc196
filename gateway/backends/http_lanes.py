"""Several small httpx connection pools, used in turn, for one server's concurrent calls.

httpcore 1.0's connection pool goes over every connection it holds, and every request waiting
for one, each time a request starts or ends, so the CPU a call costs grows with the size of its
pool: 32 calls in flight through one pool of up to 32 connections cost the client 5.3 ms of
CPU per call, through 16 pools of up to 4 connections 1.6 ms, the same server and load
(measured for the chat backend; see `bench/README.md`, chat_bench). A backend therefore spreads
its calls over ``lanes`` clients in turn, each holding a share of the connection limits.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import httpx

__all__ = ["Lanes"]


class Lanes:
    """``lanes`` httpx clients made by ``make(limits)``, handed out in turn.

    Args:
        make: Builds one client with the given connection limits (base URL, TLS, headers).
        lanes: How many clients.
        connections: Most connections over all lanes.
        keepalive: Most idle connections kept over all lanes.
    """

    def __init__(
        self,
        make: Callable[[httpx.Limits], httpx.AsyncClient],
        *,
        lanes: int = 16,
        connections: int = 256,
        keepalive: int = 64,
    ) -> None:
        if lanes < 1:
            raise ValueError("lanes must be at least 1")
        limits = httpx.Limits(
            max_connections=max(1, connections // lanes),
            max_keepalive_connections=max(1, keepalive // lanes),
        )
        self.clients = [make(limits) for _ in range(lanes)]
        self._turn = itertools.cycle(self.clients)

    def next(self) -> httpx.AsyncClient:
        """The client for the next call."""
        return next(self._turn)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
