"""Limits on the HTTP port's connections: idle and header timeouts, caps per address and in all.

uvicorn's h11 protocol closes a connection only a few seconds after a response: one that never
sends a request, or sends its headers a byte at a time, stays open for ever, and 20,000 of them
from one host took every file handle of the process (new reviewers got connection resets, the
audit checkpoints could not open the database). Here a connection with no request in progress
always has a deadline, and connections are counted per client address and in all; the excess is
answered 503 and closed at once, before it costs more than the moment it took to accept.

The total cap defaults to half the process's open-file limit: whatever the HTTP clients do, the
other half stays free for the store, its WAL, the audit reads and gRPC.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from dataclasses import dataclass

import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import get_remote_addr

log = structlog.get_logger("gateway.http")

_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
    b"content-length: 21\r\nconnection: close\r\n\r\ntoo many connections\n"
)
_UNLIMITED_FILES_TOTAL = 16_384
"""The total cap when the open-file limit is unlimited."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    idle_timeout: float
    """Seconds a connection may stay open with no request in progress."""
    header_timeout: float
    """Seconds a request may take, from its first byte, to deliver its complete headers."""
    per_client: int
    """Most connections open at once from one client address; 0 for no limit."""
    total: int = 0
    """Most connections open at once in all; 0 for half the open-file limit."""

    def __post_init__(self) -> None:
        if self.idle_timeout <= 0 or self.header_timeout <= 0:
            raise ValueError("HTTP idle and header timeouts must be positive")
        if self.per_client < 0 or self.total < 0:
            raise ValueError("HTTP connection caps must be 0 (default) or positive")


def default_total() -> int:
    """Half the process's soft open-file limit (``RLIMIT_NOFILE``)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return _UNLIMITED_FILES_TOTAL
    return max(1, soft // 2)


class _Gate:
    """Counts open connections per client address and in all (one event loop: no lock)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.total_cap = limits.total or default_total()
        self.open: Counter[str] = Counter()
        self.total = 0
        self._warned = -1.0
        self._refused = 0

    def admit(self, host: str) -> bool:
        per_client = self.limits.per_client
        if self.total >= self.total_cap:
            self._warn(host, "total")
            return False
        if per_client and self.open[host] >= per_client:
            self._warn(host, "per_client")
            return False
        self.open[host] += 1
        self.total += 1
        return True

    def release(self, host: str) -> None:
        self.total -= 1
        self.open[host] -= 1
        if self.open[host] <= 0:
            del self.open[host]  # the table holds only addresses with open connections

    def _warn(self, host: str, cap: str) -> None:
        # At most one line a second: a flood of refusals must not become a flood of logs.
        self._refused += 1
        now = time.monotonic()
        if now - self._warned >= 1.0:
            log.warning("http.connections_refused", client=host, cap=cap, refused=self._refused)
            self._warned, self._refused = now, 0


def protocol_class(limits: ConnectionLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with ``limits`` applied; pass it as ``uvicorn.Config(http=...)``."""
    gate = _Gate(limits)

    class LimitedH11Protocol(H11Protocol):
        _host: str | None = None
        """The client's address once admitted; None for a refused connection."""
        _timer: asyncio.TimerHandle | None = None
        _waiting = False
        """True while no request's headers are complete (idle, or headers arriving)."""
        _started = False
        """True once the awaited request's first bytes arrived."""
        _before: object = None
        """The request cycle in progress when waiting began; a new one means headers arrived."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            addr = get_remote_addr(transport)
            host = addr[0] if addr else ""
            if not gate.admit(host):
                transport.write(_REFUSAL)
                transport.close()
                return
            self._host = host
            super().connection_made(transport)
            self._await_request()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._host is None:
                return
            gate.release(self._host)
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._host is None:
                return
            super().data_received(data)
            if not self._waiting:
                return
            if self.cycle is not self._before:
                self._waiting = False  # a request is in progress: the app's own time
                self._disarm()
            elif not self._started:
                # From the first byte, not per byte: a byte a second must not keep it open.
                self._started = True
                self._arm(limits.header_timeout)

        def on_response_complete(self) -> None:
            cycle = self.cycle
            super().on_response_complete()  # may start a pipelined request already received
            if self.cycle is cycle and not self.transport.is_closing():
                self._await_request()

        def _await_request(self) -> None:
            self._waiting, self._started, self._before = True, False, self.cycle
            self._arm(limits.idle_timeout)

        def _arm(self, delay: float) -> None:
            self._disarm()
            self._timer = self.loop.call_later(delay, self._expire)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expire(self) -> None:
            self._timer = None
            if self._waiting and not self.transport.is_closing():
                self.transport.close()

    return LimitedH11Protocol
