"""The shared periodic loop: timing, failures that do not end it, and idempotent stop."""

from __future__ import annotations

import asyncio
import itertools

from structlog.testing import capture_logs

from gateway.periodic import Periodic


async def test_runs_at_once_then_after_each_interval_until_stopped() -> None:
    """Without ``wait_first`` the first run does not wait the interval; runs are an interval
    apart; after ``stop`` there are no more."""
    loop = asyncio.get_running_loop()
    runs: list[float] = []
    first = asyncio.Event()
    third = asyncio.Event()

    async def run() -> None:
        runs.append(loop.time())
        first.set()
        if len(runs) == 3:
            third.set()

    slow = Periodic("t", run, 60, failure_event="t.failed")
    slow.start()
    async with asyncio.timeout(5):
        await first.wait()
    await slow.stop()
    runs.clear()
    periodic = Periodic("t", run, 0.05, failure_event="t.failed")
    periodic.start()
    async with asyncio.timeout(5):
        await third.wait()
    await periodic.stop()
    done = len(runs)
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(runs))
    await asyncio.sleep(0.15)
    assert len(runs) == done


async def test_wait_first_waits_one_interval_before_the_first_run() -> None:
    """With ``wait_first`` nothing runs until one interval has passed."""
    ran = asyncio.Event()

    async def run() -> None:
        ran.set()

    periodic = Periodic("t", run, 0.3, failure_event="t.failed", wait_first=True)
    periodic.start()
    try:
        await asyncio.sleep(0.1)
        assert not ran.is_set()
        async with asyncio.timeout(5):
            await ran.wait()
    finally:
        await periodic.stop()


async def test_a_failing_run_is_logged_and_the_loop_goes_on() -> None:
    """A run that raises is logged under the given event, with its traceback, and the next
    run still happens."""
    calls = 0
    third = asyncio.Event()

    async def run() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            third.set()
        if calls == 1:
            raise OSError("disk full")

    periodic = Periodic("t", run, 0.01, failure_event="t.failed")
    with capture_logs() as logs:
        periodic.start()
        async with asyncio.timeout(5):
            await third.wait()
        await periodic.stop()
    failed = [e for e in logs if e["event"] == "t.failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "error" and failed[0]["exc_info"] is True


async def test_stop_cancels_a_run_in_progress_and_is_idempotent() -> None:
    """``stop`` ends a run that is still awaiting; stopping again, or before any start, and
    starting twice are all harmless."""
    entered = asyncio.Event()
    cancelled = asyncio.Event()
    starts = 0

    async def run() -> None:
        nonlocal starts
        starts += 1
        entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    periodic = Periodic("t", run, 0.01, failure_event="t.failed")
    await periodic.stop()
    assert not periodic.running
    periodic.start()
    periodic.start()
    assert periodic.running
    async with asyncio.timeout(5):
        await entered.wait()
    await asyncio.gather(periodic.stop(), periodic.stop())
    assert cancelled.is_set() and not periodic.running and starts == 1
    await periodic.stop()
