"""A cheap write through the store's own writer, so readiness fails when commits fail.

A read or a ``SELECT 1`` succeeds on a full disk and says nothing about a writer whose commits
fail; only a commit does. The probe rewrites one row of ``store_probe`` through the same queue,
transaction and commit as a decision, so it fails for the same reasons and recovers with them.
Load balancers and kubelets poll readiness often, so the write runs at most once per interval
and polls arriving together share one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("gateway.store")

PROBE = (
    "INSERT INTO store_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at"
)
"""The probe's one-row write, in `gateway.store.sql`'s ``?`` style."""


class WriteProbe:
    """Runs ``write`` at most once per ``interval`` seconds; calls in between get its last result.

    Args:
        write: One commit through the store's writer; raises when it does not commit.
        interval: Seconds a result is reused.
        timeout: Seconds a write may take before it counts as failed (a writer stuck behind a
            lock or an unreachable server is not ready either).
    """

    def __init__(
        self,
        write: Callable[[], Awaitable[None]],
        *,
        interval: float = 1.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._ok = False
        self._at: float | None = None
        self._running: asyncio.Future[bool] | None = None

    async def __call__(self) -> bool:
        if self._running is None:
            if self._at is not None and self._clock() - self._at < self._interval:
                return self._ok
            self._running = asyncio.ensure_future(self._run())
        # Shielded: one caller giving up (a probe's own HTTP timeout) must not cancel the write
        # the others wait on.
        return await asyncio.shield(self._running)

    async def _run(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await self._write()
            ok = True
        except Exception as exc:
            log.warning("store.probe_failed", error=f"{type(exc).__name__}: {exc}")
            ok = False
        self._ok, self._at, self._running = ok, self._clock(), None
        return ok
