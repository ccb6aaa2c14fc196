"""Waiting for people: a Decide that blocks for the verdict, and a watch that follows a
decision until it is final. Both listen to the in-process notifier (fed by this process's
writes and, on PostgreSQL, by the change feed of the other replicas)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable

from gateway.core.notifier import Change, Notifier
from gateway.store.protocol import Store
from gateway.types import Decision


async def wait_for_verdict(
    store: Store, notifier: Notifier, decision: Decision, wait: float
) -> Decision:
    """``decision`` as it stands once final, or after ``wait`` seconds (0: at once)."""
    if decision.status.is_final or wait <= 0:
        return decision
    with notifier.subscribe(decision.id) as changes:
        current = await store.get_decision(decision.id)
        if current is None or current.status.is_final:
            return current or decision
        return await wait_final(current, changes, wait)


async def wait_final(decision: Decision, changes: asyncio.Queue[Change], wait: float) -> Decision:
    """Block until a published change makes the decision final, or ``wait`` seconds pass."""
    loop = asyncio.get_running_loop()
    until = loop.time() + wait
    current = decision
    while not current.status.is_final:
        remaining = until - loop.time()
        if remaining <= 0:
            break
        try:
            async with asyncio.timeout(remaining):
                change = await changes.get()
        except TimeoutError:
            break
        if change is None:  # shutting down: answer with the state as it is
            break
        current = change
    return current


async def follow(
    notifier: Notifier,
    decision_id: str,
    read: Callable[[], Awaitable[Decision]],
    reveal: Callable[[Decision], Decision],
) -> AsyncGenerator[Decision, None]:
    """The decision as ``read`` gives it, then each change that moves it (``reveal``-ed),
    ending after a final state or at shutdown. Subscribed before the first read, so a change
    between the read and the subscription cannot be missed."""
    with notifier.subscribe(decision_id) as changes:
        current = await read()
        yield current
        last = current.updated_at, len(current.reviews), current.status
        while not current.status.is_final:
            change = await changes.get()
            if change is None:  # shutting down: the caller re-watches elsewhere
                return
            current = change
            key = current.updated_at, len(current.reviews), current.status
            if key != last:
                last = key
                yield reveal(current)
