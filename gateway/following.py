"""A small table of fleet-wide state kept in memory by every process, in step with the store.

The kill switches (`gateway.core.switches`) and the model inventory
(`gateway.modelrisk.gate`) are read on every decision, so each process keeps them in memory
(a dict lookup per decision, no I/O) and follows the store:

- the table is re-read every ``refresh_every`` seconds (0.5 s), whether or not anything was
  announced: a change made by another replica, by the CLI on the same SQLite file or
  PostgreSQL database, or while this replica's change feed was down, is seen within that
  interval. A store that announces changes (PostgreSQL: ``NOTIFY`` in the transaction of the
  change) triggers a re-read at once, so on a healthy fleet a change lands in milliseconds;
- the state is trusted for ``trust_for`` seconds (1 s) after the last read that succeeded
  began. A decision that finds it older (the timer was late: a busy process, a slow read)
  re-reads it before going on (`Follower.confirm`); only when that read fails (or takes longer
  than ``trust_for``) is the decision refused with ``StoreUnavailable`` (gRPC UNAVAILABLE with a
  retry pushback; retried with the same idempotency key, nothing was recorded). `confirmed`
  turns False meanwhile, which takes the replica out of readiness. A change committed before a
  decision starts is thus either applied to it or the decision is not made, if it was
  committed more than ``trust_for`` earlier; a process that is merely busy never refuses.

Reads are applied one at a time, in the order they began (`Follower.lock`), so a read that
began before a local change committed cannot undo it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

import structlog

from gateway.errors import StoreUnavailable
from gateway.periodic import Periodic

log = structlog.get_logger("gateway.following")

R = TypeVar("R")

Subscribe = Callable[[Callable[[], None]], None]
"""A store's way to be told of changes (``subscribe_switches``, ``subscribe_resync`` ...)."""


class Follower(Generic[R]):
    """Reads rows with ``read`` and hands them to ``apply``, as the module docstring says.

    Args:
        name: For the timer and the log events (``<name>.unconfirmed`` / ``.confirmed``).
        what: What is followed, as the refusal names it ("kill switch state").
        read: Reads the stored rows.
        apply: Replaces the state in memory with the rows read (called under `lock`).
        announced_by: The store's subscriptions that announce a change.
        refresh_every: Seconds between re-reads.
        trust_for: Seconds a read is trusted; older, a decision re-reads before going on.
        monotonic: The clock ``trust_for`` is measured with (a test passes one it controls).
    """

    def __init__(
        self,
        name: str,
        what: str,
        read: Callable[[], Awaitable[Iterable[R]]],
        apply: Callable[[Iterable[R]], None],
        announced_by: Iterable[Subscribe],
        *,
        refresh_every: float = 0.5,
        trust_for: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < refresh_every < trust_for:
            raise ValueError("refresh_every must be positive and shorter than trust_for")
        self._name = name
        self._what = what
        self._read_rows = read
        self._apply = apply
        self._announced_by = tuple(announced_by)
        self._trust_for = trust_for
        self._monotonic = monotonic
        self._confirmed_at = float("-inf")
        """Monotonic time at which the last read that succeeded began."""
        self.lock = asyncio.Lock()
        """Held while a read is applied; a local change applies under it too."""
        self._failing = False
        self._timer = Periodic(
            name,
            self._follow,
            refresh_every,
            failure_event=f"{name}.refresh_failed",
            wait_first=True,
        )
        self._announced_reads: set[asyncio.Task[None]] = set()
        self._following = False

    @property
    def loaded(self) -> bool:
        """A read has succeeded (the state in memory came from the store)."""
        return self._confirmed_at > float("-inf")

    async def load(self) -> None:
        """Read once (a failure raises: at start, or in a one-shot command)."""
        async with self.lock:
            await self.read()

    async def start(self) -> None:
        """Load, then follow the store's changes until `stop`."""
        await self.load()
        self._following = True
        for subscribe in self._announced_by:
            subscribe(self._announced)
        self._timer.start()

    async def stop(self) -> None:
        """Stop following. Idempotent."""
        self._following = False
        await self._timer.stop()
        tasks, self._announced_reads = self._announced_reads, set()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def refresh(self) -> None:
        """Re-read, unless a read that began after this call already ended.

        Raises:
            StoreUnavailable: The store could not be read.
        """
        asked = self._monotonic()
        async with self.lock:
            if self._confirmed_at >= asked:
                return
            await self.read()

    def confirmed(self) -> bool:
        """True while the state in memory was read from the store within ``trust_for``."""
        return self._monotonic() - self._confirmed_at <= self._trust_for

    async def confirm(self) -> None:
        """Return at once while confirmed, else after one re-read.

        Raises:
            StoreUnavailable: Not confirmed within ``trust_for`` and not readable now: a change
                made elsewhere could be missed, so no decision is made.
        """
        if self._monotonic() - self._confirmed_at <= self._trust_for:
            return
        try:
            async with asyncio.timeout(self._trust_for):
                await self.refresh()
        except Exception as exc:
            age = self._monotonic() - self._confirmed_at
            raise StoreUnavailable(
                "the decision",
                f"{self._what} not confirmed for {age:.1f} s: the decision was not "
                "recorded; retry later with the same idempotency key",
                retry_after=0.5,
            ) from exc

    async def read(self) -> None:
        """Read and apply the stored rows; the caller holds `lock`."""
        began = self._monotonic()
        rows = await self._read_rows()
        self._apply(rows)
        self._confirmed_at = began

    async def _follow(self) -> None:
        """One re-read of the timer or of an announcement; failures are logged once each."""
        try:
            await self.refresh()
        except Exception as exc:
            if not self._failing:
                self._failing = True
                log.error(f"{self._name}.unconfirmed", error=repr(exc))
            return
        if self._failing:
            self._failing = False
            log.warning(f"{self._name}.confirmed")

    def _announced(self) -> None:
        """The store says the table changed (or its change feed is back): re-read now."""
        if not self._following:
            return
        task = asyncio.get_running_loop().create_task(
            self._follow(), name=f"{self._name}-announced"
        )
        self._announced_reads.add(task)
        task.add_done_callback(self._announced_reads.discard)
