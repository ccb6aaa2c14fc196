"""A background task that runs one callable at a fixed interval until stopped.

The SLA sweeper, the session purger and the audit checkpointer each run work on a timer for the
life of the process. They share this loop so that each behaves the same way at its edges: a run
that raises is logged and the next run happens on time (a database away for a moment must not
end sweeps or checkpoints for good), ``stop`` cancels and awaits the one task it created, and
stopping twice, or before starting, does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

__all__ = ["Periodic"]

log = structlog.get_logger("gateway.periodic")


class Periodic:
    """Runs ``run`` every ``interval`` seconds in one task, from ``start`` until ``stop``.

    The interval is the pause between the end of one run and the start of the next, so runs
    never overlap and a slow run delays the next one instead of piling up.

    Args:
        name: The asyncio task's name, shown in task dumps.
        run: One run of the work; its result is ignored.
        interval: Seconds to wait after each run.
        failure_event: Log event for a run that raised (logged with its traceback).
        wait_first: Wait one interval before the first run instead of running at once.
    """

    def __init__(
        self,
        name: str,
        run: Callable[[], Awaitable[object]],
        interval: float,
        *,
        failure_event: str,
        wait_first: bool = False,
    ) -> None:
        self._name = name
        self._run = run
        self._interval = interval
        self._failure_event = failure_event
        self._wait_first = wait_first
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True from ``start`` until ``stop``."""
        return self._task is not None

    def start(self) -> None:
        """Start the loop in a task of the running event loop. Idempotent."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        """Cancel the loop, a run in progress included, and wait for it to end. Idempotent."""
        # Taken before awaiting, so a second stop during the first finds nothing to cancel.
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        if self._wait_first:
            await asyncio.sleep(self._interval)
        while True:
            try:
                await self._run()
            except Exception:  # this run failed; the next one may well succeed
                log.exception(self._failure_event)
            await asyncio.sleep(self._interval)
