"""Erasing a data subject in the store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from raw import verify_chain
from store_factories import created_event, make_decision

from gateway.store import SQLiteStore
from gateway.types import AuditDraft
from tests.unit.store.conftest import AnyStore


def _erasure_event() -> AuditDraft:
    return AuditDraft(
        decision_id="",
        type="subject.erased",
        actor="app:admin1",
        payload={"subject": "sha256:x", "reason": "DSR-1"},
    )


async def _decide(store: AnyStore, subject: str, secret: str) -> str:
    d = make_decision(subject_ref=subject, input={"name": secret, "amount": 10})
    await store.create_decision(d, [created_event(d)], [])
    return d.id


async def test_erases_only_the_subjects_inputs_and_payloads(store: AnyStore, location: str) -> None:
    """The subject's inputs and event payloads are erased, others' stay, the chain verifies."""
    mine = [await _decide(store, "cust-7", f"Ana {i}") for i in range(3)]
    other = await _decide(store, "cust-8", "Bo")
    decisions, events = await store.erase_subject("cust-7", _erasure_event())
    assert (decisions, events) == (3, 3)
    for decision_id in mine:
        erased = await store.get_decision(decision_id)
        assert erased is not None and erased.input == {}
        assert erased.status.value == "PENDING_REVIEW"  # the outcome record stays
        (created,) = await store.audit_events_for(decision_id)
        assert created.payload is None
    kept = await store.get_decision(other)
    assert kept is not None and kept.input == {"name": "Bo", "amount": 10}
    assert (await store.audit_events_for(other))[0].payload is not None
    last = (await store.audit_events(after_seq=4))[-1]
    assert last.type == "subject.erased"
    assert last.payload == {
        "subject": "sha256:x",
        "reason": "DSR-1",
        "decisions": 3,
        "events": 3,
    }
    assert (await verify_chain(location)).ok


async def test_second_erasure_finds_nothing_and_is_recorded_again(store: AnyStore) -> None:
    """Erasing twice changes nothing more, yet both requests are in the trail."""
    await _decide(store, "cust-9", "Cy")
    assert await store.erase_subject("cust-9", _erasure_event()) == (1, 1)
    assert await store.erase_subject("cust-9", _erasure_event()) == (0, 0)
    types = [e.type for e in await store.audit_events()]
    assert types.count("subject.erased") == 2


def _files_holding(directory: Path, needle: bytes) -> list[str]:
    files = [p for p in directory.iterdir() if p.name.startswith("gateway.db")]
    assert files
    return [p.name for p in files if needle in p.read_bytes()]


async def test_erased_value_is_gone_from_the_sqlite_files(tmp_path: Path) -> None:
    """After erasure on SQLite, the input's bytes are in neither the database nor its WAL."""
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.start()
    try:
        await _decide(store, "cust-1", "Zebulon-Quartermaine")
        await store.erase_subject("cust-1", _erasure_event())
        assert _files_holding(tmp_path, b"Zebulon-Quartermaine") == []
    finally:
        await store.stop()
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        assert conn.execute("SELECT input FROM decisions").fetchone() == ("{}",)
