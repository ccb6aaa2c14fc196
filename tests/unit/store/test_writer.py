"""The writer's synchronous driver runs SQLite's batches on its thread without an event loop."""

from __future__ import annotations

import asyncio

import pytest

from gateway.store.writer import drive


async def _add(a: int, b: int) -> int:
    return a + b


async def _nested() -> int:
    return await _add(1, 2) + await _add(3, 4)


async def _suspends() -> int:
    await asyncio.sleep(0)
    return 1


def test_drive_runs_a_coroutine_that_never_suspends() -> None:
    """A chain of coroutines that never wait is run to its result on the calling thread."""
    assert drive(_nested()) == 10


def test_drive_refuses_a_coroutine_that_suspends() -> None:
    """A coroutine that waits for something is closed and reported, never left half-run."""
    with pytest.raises(RuntimeError, match="suspended"):
        drive(_suspends())
