"""Verifying a database file whose audit rows were changed behind the gateway's back."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.audit.chain import canonical_bytes, chain_hash
from gateway.store import SQLiteStore
from gateway.timefmt import parse_ts
from gateway.types import AuditDraft, Decision
from tests.audit_builders import audit_decision
from tests.audit_files import verify_file

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
N = 10


def _decision(i: int) -> Decision:
    return audit_decision(i)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database with N chained events (seq 1..N), one per decision."""
    path = tmp_path / "gateway.db"

    async def fill() -> None:
        async with SQLiteStore(path) as store:
            for i in range(1, N + 1):
                d = _decision(i)
                draft = AuditDraft(d.id, "decision.created", "app:k1", {"input": d.input})
                await store.create_decision(d, [draft], [])

    asyncio.run(fill())
    assert verify_file(path).ok
    return path


@contextmanager
def tamper(path: Path) -> Iterator[sqlite3.Connection]:
    """A raw connection with the append-only guards dropped, as an intruder would."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_events_no_delete")
    conn.execute("DROP TRIGGER audit_events_only_erase")
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def test_edited_column_is_caught(db: Path) -> None:
    """Changing one column of one event names that event and that column."""
    with tamper(db) as conn:
        conn.execute("UPDATE audit_events SET decision_id = 'dec-999' WHERE seq = 4")
    result = verify_file(db)
    assert not result.ok
    assert result.first_bad_seq == 4
    assert "'decision_id'" in result.reason
    assert result.checked == 3


def test_edited_timestamp_is_caught(db: Path) -> None:
    """Back-dating an event is caught."""
    with tamper(db) as conn:
        conn.execute("UPDATE audit_events SET ts = '2020-01-01T00:00:00.000000Z' WHERE seq = 2")
    result = verify_file(db)
    assert result.first_bad_seq == 2
    assert "'ts'" in result.reason


def test_changed_payload_is_caught(db: Path) -> None:
    """Changing a stored payload is caught through its digest."""
    with tamper(db) as conn:
        conn.execute("""UPDATE audit_events SET payload = '{"input":{}}' WHERE seq = 5""")
    result = verify_file(db)
    assert result.first_bad_seq == 5
    assert "payload digest" in result.reason


def test_deleted_event_is_caught(db: Path) -> None:
    """Deleting an event names the missing seq."""
    with tamper(db) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq = 6")
    result = verify_file(db)
    assert result.first_bad_seq == 6
    assert "missing: 6" in result.reason


def test_inserted_event_is_caught(db: Path) -> None:
    """A well-formed forged event slipped into the middle breaks the link after it."""
    with tamper(db) as conn:
        # Make room at seq 7 (negate first so the primary key never collides), then forge an
        # event that chains correctly onto seq 6.
        conn.execute("UPDATE audit_events SET seq = -seq WHERE seq >= 7")
        conn.execute("UPDATE audit_events SET seq = 1 - seq WHERE seq < 0")
        prev = conn.execute("SELECT hash FROM audit_events WHERE seq = 6").fetchone()[0]
        canonical = canonical_bytes(7, T0, "dec-x", "decision.reviewed", "user:eve", "d", "", "")
        conn.execute(
            "INSERT INTO audit_events (seq, ts, decision_id, type, actor, payload,"
            " payload_digest, trace_id, span_id, prev_hash, hash, canonical)"
            " VALUES (7, ?, 'dec-x', 'decision.reviewed', 'user:eve', NULL, 'd', '', '', ?, ?, ?)",
            ("2025-03-01T09:30:00.000000Z", prev, chain_hash(prev, canonical), canonical),
        )
    result = verify_file(db)
    assert result.first_bad_seq == 8
    assert "prev_hash" in result.reason


def test_swapped_events_are_caught(db: Path) -> None:
    """Swapping the contents of two neighbouring events names the first of them."""
    with tamper(db) as conn:
        conn.execute("UPDATE audit_events SET seq = -1 WHERE seq = 3")
        conn.execute("UPDATE audit_events SET seq = 3 WHERE seq = 4")
        conn.execute("UPDATE audit_events SET seq = 4 WHERE seq = -1")
    result = verify_file(db)
    assert result.first_bad_seq == 3
    assert "prev_hash" in result.reason


def test_rehashed_event_is_caught_at_the_next_link(db: Path) -> None:
    """Rewriting one event consistently still breaks the link from the next event."""
    with tamper(db) as conn:
        row = conn.execute(
            "SELECT ts, decision_id, type, payload_digest, prev_hash FROM audit_events"
            " WHERE seq = 5"
        ).fetchone()
        ts, decision_id, type_, digest, prev = row
        canonical = canonical_bytes(5, parse_ts(ts), decision_id, type_, "user:eve", digest, "", "")
        conn.execute(
            "UPDATE audit_events SET actor = 'user:eve', canonical = ?, hash = ? WHERE seq = 5",
            (canonical, chain_hash(prev, canonical)),
        )
    result = verify_file(db)
    assert result.first_bad_seq == 6
    assert "prev_hash" in result.reason


def test_erased_payloads_still_verify(db: Path) -> None:
    """Erasing payloads (allowed by the guards, no tampering needed) keeps the chain valid."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("UPDATE audit_events SET payload = NULL WHERE seq IN (2, 3, 9)")
        conn.commit()
    finally:
        conn.close()
    result = verify_file(db)
    assert result.ok
    assert result.checked == N
