"""The PostgreSQL change listener across a lost connection, on a real server."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from store_factories import T0, created_event, decision_task, make_decision
from structlog.testing import capture_logs

from gateway.store.postgres.listen import Backoff
from gateway.store.postgres.store import PostgresStore
from gateway.types import AuditDraft, Review, Status, Verdict
from tests.pgcontrol import Gate, terminate_listener


async def approve(store: PostgresStore, decision_id: str) -> None:
    review = Review("alice", "reviewer", Verdict.APPROVE, "ok", T0 + timedelta(minutes=1))
    event = AuditDraft(decision_id, "decision.reviewed", "user:alice", {})
    await store.record_review(
        decision_id, review, Status.APPROVED, None, event, Status.PENDING_REVIEW
    )


@pytest.fixture
async def other(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    """A second replica on the same database, which makes the changes."""
    store = PostgresStore(pg_dsn)
    await store.start()
    yield store
    await store.stop()


async def test_listener_comes_back_after_its_backend_is_terminated(
    pg_dsn: str, other: PostgresStore
) -> None:
    """After pg_terminate_backend the listener reconnects and hears the other replica again."""
    store = PostgresStore(pg_dsn, listen_backoff=Backoff(first=0.01))
    await store.start()
    try:
        seen: asyncio.Queue[str] = asyncio.Queue()
        resynced = asyncio.Event()
        store.subscribe_changes(seen.put_nowait)
        store.subscribe_resync(resynced.set)
        old_pid = store.listener.backend_pid
        with capture_logs() as logs:
            await terminate_listener(pg_dsn, store)
            await asyncio.wait_for(resynced.wait(), 10)
        assert store.listener.connected
        assert store.listener.backend_pid not in (None, old_pid)
        assert store.listener.reconnections == 1
        events = [(e["event"], e["log_level"]) for e in logs]
        assert ("store.listener_lost", "warning") in events
        assert ("store.listener_recovered", "info") in events

        d = make_decision()
        await other.create_decision(d, [created_event(d)], [decision_task(d)])
        assert await asyncio.wait_for(seen.get(), 10) == d.id
        await approve(other, d.id)
        assert await asyncio.wait_for(seen.get(), 10) == d.id
    finally:
        await store.stop()


async def test_change_committed_while_down_is_caught_by_the_resync(
    pg_dsn: str, other: PostgresStore
) -> None:
    """A verdict committed while the listener is down is never announced; the resync follows."""
    gate = Gate()
    store = PostgresStore(pg_dsn, listen_backoff=Backoff(sleep=gate.sleep))
    await store.start()
    try:
        seen: asyncio.Queue[str] = asyncio.Queue()
        store.subscribe_changes(seen.put_nowait)
        d = make_decision()
        await other.create_decision(d, [created_event(d)], [decision_task(d)])
        assert await asyncio.wait_for(seen.get(), 10) == d.id

        listening_at_resync: list[bool] = []
        resynced = asyncio.Event()

        def resync() -> None:
            listening_at_resync.append(store.listener.connected)
            resynced.set()

        store.subscribe_resync(resync)
        await terminate_listener(pg_dsn, store)
        await asyncio.wait_for(gate.holding.wait(), 10)  # lost, and held before reconnecting
        assert not store.listener.connected
        await approve(other, d.id)  # its NOTIFY finds nobody listening on this replica
        assert not resynced.is_set()

        gate.opened.set()
        await asyncio.wait_for(resynced.wait(), 10)
        assert listening_at_resync == [True]  # listening first: later changes are heard
        current = await store.get_decision(d.id)  # what a waiter told to re-read finds
        assert current is not None and current.status is Status.APPROVED
        assert seen.empty()  # the announcement itself is gone: only the resync tells
    finally:
        await store.stop()


async def test_stopping_while_reconnecting_ends_cleanly(pg_dsn: str) -> None:
    """Stopping the store while the listener waits to reconnect ends it, with nothing logged."""
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    gate = Gate()
    store = PostgresStore(pg_dsn, listen_backoff=Backoff(sleep=gate.sleep))
    await store.start()
    try:
        with capture_logs() as logs:
            await terminate_listener(pg_dsn, store)
            await asyncio.wait_for(gate.holding.wait(), 10)
            await asyncio.wait_for(store.stop(), 10)
            gc.collect()  # an exception nobody retrieved is reported when its task is collected
            await asyncio.sleep(0)
        assert [t for t in asyncio.all_tasks() if t.get_name() == "postgres-listener"] == []
        assert not store.listener.connected
        assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
        assert [e["event"] for e in logs] == ["store.listener_lost"]
        assert unhandled == []
    finally:
        loop.set_exception_handler(previous)
        await store.stop()
