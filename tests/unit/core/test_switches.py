"""The kill switch's core: following the stored state, and what it does when it cannot."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.core.switches import KillSwitches
from gateway.errors import InvalidInput, StoreUnavailable
from gateway.policy import PolicySet, load_policies
from gateway.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[3]
APP = "credit-limit"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies(ROOT / "policies")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "gateway.db")
    await s.start()
    yield s
    await s.stop()


async def test_a_change_made_by_another_process_is_followed_within_a_second(
    store: SQLiteStore, policies: PolicySet, tmp_path: Path
) -> None:
    """A pause written through another store on the same file (another process, the CLI)
    reaches a running follower's decision-time mapping within a second, and so does the resume."""
    follower = KillSwitches(store, lambda: policies)
    await follower.start()
    try:
        assert APP not in (await follower.current())
        async with SQLiteStore(tmp_path / "gateway.db") as other:
            elsewhere = KillSwitches(other, lambda: policies)
            await elsewhere.load()
            for paused in (True, False):
                await elsewhere.set("application", APP, paused, "cli:ops", "drift")
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 1.0
                while (APP in (await follower.current())) is not paused:
                    assert loop.time() < deadline, f"paused={paused} not followed within 1 s"
                    await asyncio.sleep(0.02)
    finally:
        await follower.stop()


async def test_unconfirmed_state_is_trusted_for_a_second_then_refuses(
    store: SQLiteStore, policies: PolicySet, tmp_path: Path
) -> None:
    """When the switches cannot be read, the last state holds for trust_for seconds; after that
    every decision is refused as UNAVAILABLE and readiness says so (never treated as running);
    a read that succeeds again confirms it."""
    clock = Clock()
    switches = KillSwitches(
        store, lambda: policies, monotonic=clock, refresh_every=0.5, trust_for=1.0
    )
    await switches.set("application", APP, True, "user:admin", "drift")
    with sqlite3.connect(tmp_path / "gateway.db") as db:  # the table is gone: reads fail
        db.execute("ALTER TABLE switches RENAME TO switches_away")
    clock.now += 0.9
    with pytest.raises(Exception, match="switches"):
        await switches.refresh()
    assert (await switches.current()) == {APP: False}
    assert switches.confirmed()
    clock.now += 0.2
    with pytest.raises(StoreUnavailable) as err:
        await switches.current()
    assert "not recorded" in err.value.message and "same idempotency key" in err.value.message
    assert not switches.confirmed()
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        db.execute("ALTER TABLE switches_away RENAME TO switches")
    await switches.refresh()
    assert (await switches.current()) == {APP: False}


async def test_a_pause_without_a_reason_is_refused(store: SQLiteStore, policies: PolicySet) -> None:
    """A blank reason to pause is refused naming the field; nothing is written; a resume may
    give none."""
    switches = KillSwitches(store, lambda: policies)
    await switches.load()
    with pytest.raises(InvalidInput) as err:
        await switches.set("application", APP, True, "cli:ops", "   ")
    assert err.value.field == "reason"
    assert await store.list_switches() == []
    assert await store.audit_events() == []
    resumed = await switches.set("application", APP, False, "cli:ops")
    assert not resumed.paused


async def test_a_change_here_applies_at_once_and_is_audited(
    store: SQLiteStore, policies: PolicySet
) -> None:
    """The process that pauses applies it before set returns; the event names actor and reason."""
    switches = KillSwitches(store, lambda: policies)
    await switches.load()
    await switches.set("backend", "credit-scorer", True, "app:k1", "vendor outage")
    assert (await switches.current())[APP] is True  # the backend's applications, model not called
    [event] = await store.audit_events()
    assert (event.type, event.actor) == ("switch.paused", "app:k1")
    assert event.payload == {"kind": "backend", "name": "credit-scorer", "reason": "vendor outage"}


def test_refreshing_must_be_quicker_than_the_trust(policies: PolicySet, tmp_path: Path) -> None:
    """A re-read interval that could let the state go stale between reads is refused."""
    with pytest.raises(ValueError, match="refresh_every"):
        KillSwitches(
            SQLiteStore(tmp_path / "x.db"), lambda: policies, refresh_every=1.0, trust_for=1.0
        )
