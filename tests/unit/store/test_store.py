"""The Store protocol against a real SQLite file and a real PostgreSQL database, and the
SQLite store's own guarantees (WAL, file layout, query plans)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
from conftest import AnyStore
from raw import count, fetch_one, verify_chain
from store_factories import T0, created_event, decision_task, make_decision

from gateway.audit.chain import GENESIS
from gateway.audit.verifier import verify_events
from gateway.errors import Conflict, FailedPrecondition, NotFound
from gateway.store import SQLiteStore, StoreClosed, open_store
from gateway.store.sqlite.migrations import apply_migrations
from gateway.store.sqlite.store import idempotency_lookup_sql
from gateway.types import ApiKey, AuditDraft, Review, Status, TaskKind, Verdict
from tests.audit_files import iter_audit_events, verify_file

PLUS_8 = timezone(timedelta(hours=8))


def _review(verdict: Verdict = Verdict.APPROVE, **kw: object) -> Review:
    fields: dict[str, object] = {
        "reviewer": "alice",
        "role": "reviewer",
        "verdict": verdict,
        "reason": "documents checked",
        "at": T0 + timedelta(minutes=5),
    }
    fields.update(kw)
    return Review(**fields)  # type: ignore[arg-type]


def _reviewed_event(decision_id: str) -> AuditDraft:
    return AuditDraft(decision_id, "decision.reviewed", "user:alice", {"verdict": "approve"})


async def test_decision_round_trips_with_every_field(store: AnyStore) -> None:
    """A decision with every field set reads back equal, datetimes aware and in UTC."""
    d = make_decision(
        subject_ref="cust-42",
        idempotency_key="req-1",
        labels={"channel": "web", "region": "eu"},
        final_output={"limit": 5000, "nested": {"ok": True, "list": [1, 2.5, None, "ü"]}},
        reasons=("escalate[0]: amount", "route[2]: grey zone"),
        created_at=T0.astimezone(PLUS_8),
        review_deadline=T0 + timedelta(hours=4),
        approvals_needed=2,
    )
    stored, created = await store.create_decision(d, [created_event(d)], [decision_task(d)])
    assert created
    assert stored == d
    got = await store.get_decision(d.id)
    assert got == d
    assert got is not None
    assert got.created_at.tzinfo is UTC
    assert got.review_deadline is not None
    assert got.review_deadline.tzinfo is UTC
    assert await store.get_decision("missing") is None


async def test_decision_without_model_round_trips(store: AnyStore) -> None:
    """A prohibited-tier decision with no model and no outputs reads back equal."""
    d = make_decision(
        status=Status.REJECTED, model=None, model_output=None, review_deadline=None, tier="x"
    )
    await store.create_decision(d, [created_event(d)], [])
    assert await store.get_decision(d.id) == d


async def test_reviews_round_trip_in_order(store: AnyStore) -> None:
    """Reviews come back with the decision, in the order they were recorded."""
    d = make_decision(approvals_needed=2)
    await store.create_decision(d, [created_event(d)], [decision_task(d)])
    first = _review(reviewer="alice")
    second = _review(
        Verdict.OVERRIDE, reviewer="bob", at=T0 + timedelta(minutes=9), output={"limit": 100}
    )
    await store.record_review(
        d.id, first, Status.PENDING_REVIEW, None, _reviewed_event(d.id), Status.PENDING_REVIEW
    )
    updated = await store.record_review(
        d.id,
        second,
        Status.OVERRIDDEN,
        {"limit": 100},
        _reviewed_event(d.id),
        Status.PENDING_REVIEW,
    )
    assert updated.reviews == (first, second)
    assert updated.status is Status.OVERRIDDEN
    assert updated.final_output == {"limit": 100}
    assert updated.updated_at == second.at
    assert await store.get_decision(d.id) == updated


async def test_idempotent_create_returns_existing(store: AnyStore, location: str) -> None:
    """A second create with the same application and key returns the first and writes nothing."""
    a = make_decision(idempotency_key="k1")
    b = make_decision(idempotency_key="k1")
    assert await store.create_decision(a, [created_event(a)], [decision_task(a)]) == (a, True)
    assert await store.create_decision(b, [created_event(b)], [decision_task(b)]) == (a, False)
    assert await store.find_by_idempotency_key("credit-limit", "k1") == a
    assert await store.find_by_idempotency_key("credit-limit", "other") is None
    assert await count(location, "decisions") == 1
    assert await count(location, "audit_events") == 1
    assert await count(location, "review_tasks") == 1


async def test_idempotent_creates_in_one_batch_make_one_decision(
    store: AnyStore, location: str
) -> None:
    """Concurrent creates with one key, committed together, make one decision and one event."""
    ds = [make_decision(idempotency_key="same") for _ in range(20)]
    results = await asyncio.gather(
        *(store.create_decision(d, [created_event(d)], [decision_task(d)]) for d in ds)
    )
    assert store.stats.largest_batch > 1
    assert [created for _, created in results].count(True) == 1
    winner = next(stored for stored, created in results if created)
    assert all(stored == winner for stored, _ in results)
    assert await count(location, "decisions") == 1
    assert await count(location, "audit_events") == 1


async def test_same_key_in_two_applications_makes_two(store: AnyStore) -> None:
    """Idempotency keys are scoped to the application."""
    a = make_decision(application="app-a", idempotency_key="k")
    b = make_decision(application="app-b", idempotency_key="k")
    results = await asyncio.gather(
        store.create_decision(a, [created_event(a)], []),
        store.create_decision(b, [created_event(b)], []),
    )
    assert results == [(a, True), (b, True)]


async def test_empty_keys_never_collide(store: AnyStore) -> None:
    """Decisions without an idempotency key are all written."""
    ds = [make_decision() for _ in range(3)]
    results = await asyncio.gather(*(store.create_decision(d, [], []) for d in ds))
    assert all(created for _, created in results)
    assert await store.find_by_idempotency_key("credit-limit", "") is None


async def test_group_commit_uses_fewer_transactions(store: AnyStore, location: str) -> None:
    """500 concurrent creates all succeed in fewer transactions, and the chain verifies."""
    ds = [make_decision() for _ in range(500)]
    results = await asyncio.gather(
        *(
            store.create_decision(
                d, [created_event(d), created_event(d, type="decision.routed")], [decision_task(d)]
            )
            for d in ds
        )
    )
    assert all(created for _, created in results)
    assert store.stats.transactions < 500
    assert store.stats.jobs == 500
    result = await verify_chain(location)
    assert result.ok, result.reason
    assert result.checked == 1000
    assert store.chain_head() == (result.head_seq, result.head_hash)
    events = await store.audit_events(after_seq=0, limit=5000)
    assert [e.seq for e in events] == list(range(1, 1001))
    assert verify_events(events).ok


async def test_events_get_commit_time_unless_given(store: AnyStore) -> None:
    """A draft without ts gets the commit time; a draft with ts keeps it."""
    d = make_decision()
    given = T0 - timedelta(seconds=3)
    await store.create_decision(d, [created_event(d), created_event(d, ts=given)], [])
    first, second = await store.audit_events_for(d.id)
    assert first.ts.tzinfo is UTC
    assert first.ts > T0
    assert second.ts == given
    assert first.payload == {"status": "PENDING_REVIEW", "input": d.input}


async def test_record_review_is_compare_and_set(store: AnyStore, location: str) -> None:
    """A review against a stale status raises Conflict and changes nothing."""
    d = make_decision()
    await store.create_decision(d, [created_event(d)], [decision_task(d)])
    await store.record_review(
        d.id, _review(), Status.APPROVED, {"ok": 1}, _reviewed_event(d.id), Status.PENDING_REVIEW
    )
    with pytest.raises(Conflict):
        await store.record_review(
            d.id,
            _review(Verdict.REJECT, reviewer="bob"),
            Status.REJECTED,
            None,
            _reviewed_event(d.id),
            Status.PENDING_REVIEW,
        )
    got = await store.get_decision(d.id)
    assert got is not None
    assert got.status is Status.APPROVED
    assert len(got.reviews) == 1
    assert len(await store.audit_events_for(d.id)) == 2


async def test_record_review_on_missing_decision_is_not_found(store: AnyStore) -> None:
    """A review of an unknown decision raises NotFound."""
    with pytest.raises(NotFound):
        await store.record_review(
            "nope", _review(), Status.APPROVED, None, _reviewed_event("nope"), Status.IN_REVIEW
        )


async def test_record_review_from_final_status_is_refused(store: AnyStore) -> None:
    """Expecting a final status is refused: final states never change."""
    d = make_decision(status=Status.APPROVED)
    await store.create_decision(d, [], [])
    with pytest.raises(FailedPrecondition):
        await store.record_review(
            d.id, _review(), Status.REJECTED, None, _reviewed_event(d.id), Status.APPROVED
        )


async def test_concurrent_reviews_only_one_wins(store: AnyStore) -> None:
    """Of many concurrent verdicts on one decision, exactly one wins; the others conflict."""
    d = make_decision()
    await store.create_decision(d, [created_event(d)], [decision_task(d)])
    results = await asyncio.gather(
        *(
            store.record_review(
                d.id,
                _review(reviewer=f"r{i}"),
                Status.APPROVED,
                None,
                _reviewed_event(d.id),
                Status.PENDING_REVIEW,
            )
            for i in range(10)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 9


async def test_final_status_closes_decision_tasks(store: AnyStore) -> None:
    """A final verdict closes the decision's review task but not its QA task."""
    d = make_decision()
    other = make_decision()
    qa = decision_task(d, kind=TaskKind.QA, deadline=None)
    await store.create_decision(d, [created_event(d)], [decision_task(d), qa])
    await store.create_decision(other, [created_event(other)], [decision_task(other)])
    await store.record_review(
        d.id, _review(), Status.PENDING_REVIEW, None, _reviewed_event(d.id), Status.PENDING_REVIEW
    )
    open_ids = [t.decision_id for t in await store.list_review_tasks(TaskKind.DECISION)]
    assert open_ids == [d.id, other.id]
    await store.record_review(
        d.id, _review(), Status.APPROVED, None, _reviewed_event(d.id), Status.PENDING_REVIEW
    )
    assert [t.decision_id for t in await store.list_review_tasks(TaskKind.DECISION)] == [other.id]
    assert [t.decision_id for t in await store.list_review_tasks(TaskKind.QA)] == [d.id]
    all_tasks = await store.list_review_tasks(TaskKind.DECISION, open_only=False)
    assert {t.decision_id for t in all_tasks} == {d.id, other.id}


async def test_review_tasks_most_urgent_first(store: AnyStore) -> None:
    """Open tasks come earliest deadline first, tasks without a deadline last, up to limit."""
    late = make_decision(review_deadline=T0 + timedelta(hours=5))
    none = make_decision(review_deadline=None)
    soon = make_decision(review_deadline=T0 + timedelta(minutes=5))
    for d in (late, none, soon):
        await store.create_decision(d, [], [decision_task(d)])
    tasks = await store.list_review_tasks(TaskKind.DECISION)
    assert [t.decision_id for t in tasks] == [soon.id, late.id, none.id]
    assert tasks[0] == decision_task(soon)
    assert len(await store.list_review_tasks(TaskKind.DECISION, limit=2)) == 2


async def test_failing_job_does_not_fail_its_batch(store: AnyStore, location: str) -> None:
    """A create that violates a constraint fails alone and leaves no events behind."""
    good = [make_decision() for _ in range(30)]
    bad = make_decision()
    # A task pointing at a decision that does not exist violates the foreign key.
    bad_task = decision_task(bad, decision_id="no-such-decision")
    calls = [store.create_decision(d, [created_event(d)], [decision_task(d)]) for d in good]
    calls.insert(15, store.create_decision(bad, [created_event(bad)], [bad_task]))
    results = await asyncio.gather(*calls, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert isinstance(
        failures[0], sqlite3.IntegrityError | asyncpg.IntegrityConstraintViolationError
    )
    assert store.stats.isolated_replays >= 1
    assert await store.get_decision(bad.id) is None
    assert await store.audit_events_for(bad.id) == []
    assert await count(location, "decisions") == 30
    assert await count(location, "audit_events") == 30
    assert (await verify_chain(location)).ok
    # The writer carries on with a consistent chain head.
    after = make_decision()
    assert (await store.create_decision(after, [created_event(after)], []))[1]
    assert (await verify_chain(location)).checked == 31


async def test_unserialisable_input_fails_only_its_caller(store: AnyStore) -> None:
    """A value JSON cannot hold fails in the caller, before it reaches the writer."""
    nan = make_decision(input={"x": float("nan")})
    with pytest.raises(ValueError, match="NaN and infinities"):
        await store.create_decision(nan, [created_event(nan, payload={})], [])
    naive = make_decision(created_at=T0.replace(tzinfo=None))
    with pytest.raises(ValueError, match="naive"):
        await store.create_decision(naive, [], [])
    assert store.stats.jobs == 0


async def test_restart_keeps_data_and_continues_chain(location: str) -> None:
    """After stop and start the data is there and the chain continues without a fork."""
    first = open_store(location)
    await first.start()
    ds = [make_decision() for _ in range(10)]
    await asyncio.gather(*(first.create_decision(d, [created_event(d)], []) for d in ds))
    head = first.chain_head()
    await first.stop()

    second = open_store(location)
    await second.start()
    try:
        assert second.chain_head() == head == (10, head[1])
        assert await second.get_decision(ds[3].id) == ds[3]
        more = make_decision()
        await second.create_decision(more, [created_event(more)], [])
        (event,) = await second.audit_events(after_seq=10)
        assert event.seq == 11
        assert event.prev_hash == head[1]
    finally:
        await second.stop()
    result = await verify_chain(location)
    assert result.ok
    assert result.checked == 11


async def test_stop_flushes_queued_writes_and_is_idempotent(location: str) -> None:
    """Writes queued before stop() are committed; stop() twice is fine."""
    s = open_store(location)
    await s.start()
    ds = [make_decision() for _ in range(50)]
    pending = [asyncio.ensure_future(s.create_decision(d, [created_event(d)], [])) for d in ds]
    await asyncio.sleep(0)  # let every call reach the queue
    await asyncio.gather(s.stop(), s.stop())
    await s.stop()
    assert all(f.result()[1] for f in pending)
    assert await count(location, "decisions") == 50


async def test_calls_after_stop_raise(location: str) -> None:
    """Every call after stop() raises StoreClosed instead of hanging."""
    s = open_store(location)
    d = make_decision()
    with pytest.raises(StoreClosed, match="not started"):
        await s.create_decision(d, [], [])
    await s.start()
    await s.stop()
    with pytest.raises(StoreClosed, match="stopped"):
        await s.create_decision(d, [], [])
    with pytest.raises(StoreClosed):
        await s.get_decision(d.id)
    with pytest.raises(StoreClosed):
        await s.audit_events()


async def test_api_keys(store: AnyStore) -> None:
    """API keys are stored, read, refused when duplicated and revoked once."""
    key = ApiKey("k1", "scrypt$abc", ("credit-limit", "kyc"), T0)
    await store.add_api_key(key)
    assert await store.get_api_key("k1") == key
    assert await store.get_api_key("k2") is None
    with pytest.raises(Conflict):
        await store.add_api_key(key)
    assert await store.revoke_api_key("k1") is True
    assert await store.revoke_api_key("k1") is False
    assert await store.revoke_api_key("k2") is False
    revoked = await store.get_api_key("k1")
    assert revoked is not None
    assert revoked.revoked


async def test_pragmas_and_append_only_guards(sqlite_store: SQLiteStore, db_path: Path) -> None:
    """The file is in WAL mode and audit rows refuse deletes and edits other than erasure."""
    d = make_decision()
    await sqlite_store.create_decision(d, [created_event(d)], [])
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit_events")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit_events SET actor = 'x'")
        conn.execute("UPDATE audit_events SET payload = NULL")
        conn.commit()
    finally:
        conn.close()
    assert verify_file(db_path).ok


async def test_offline_reader_pages_through_events(
    sqlite_store: SQLiteStore, db_path: Path
) -> None:
    """The offline reader yields every event in order across several pages."""
    ds = [make_decision() for _ in range(25)]
    await asyncio.gather(*(sqlite_store.create_decision(d, [created_event(d)], []) for d in ds))
    events = list(iter_audit_events(db_path, batch=7))
    assert [e.seq for e in events] == list(range(1, 26))
    assert events == await sqlite_store.audit_events(limit=100)
    assert verify_events(events).head_hash == sqlite_store.chain_head()[1]
    assert verify_events([]).head_hash == GENESIS


async def test_timestamps_are_stored_as_utc_text(store: AnyStore, location: str) -> None:
    """Timestamps are stored as fixed-width RFC 3339 UTC text."""
    d = make_decision(created_at=T0.astimezone(PLUS_8))
    await store.create_decision(d, [], [])
    created_at = await fetch_one(location, "SELECT created_at FROM decisions")
    assert created_at == "2025-03-01T09:30:00.123456Z"
    assert d.created_at.astimezone(UTC) == T0


def test_idempotency_lookup_searches_the_index(tmp_path: Path) -> None:
    """The batch idempotency lookup searches the unique index instead of scanning it."""
    conn = sqlite3.connect(tmp_path / "plan.db", isolation_level=None)
    try:
        apply_migrations(conn, "now")
        plan = conn.execute(
            "EXPLAIN QUERY PLAN " + idempotency_lookup_sql(3), ["a", "k"] * 3
        ).fetchall()
    finally:
        conn.close()
    details = [row[3] for row in plan]
    assert any("SEARCH d USING INDEX decisions_idempotency" in x for x in details), details
    assert not any(x.startswith("SCAN d") for x in details), details


async def test_deep_queue_page_searches_the_queue_index(tmp_path: Path) -> None:
    """A page after a cursor is a range search on the queue index, not a scan of the items
    before it: the deadline key must be spelled as the index spells it."""
    store = SQLiteStore(tmp_path / "queue.db")
    await store.start()
    seen: list[tuple[str, list[object]]] = []
    read = store._rows

    async def recording(statement: str, params: object) -> list[object]:
        seen.append((statement, list(params)))  # type: ignore[call-overload]
        return await read(statement, params)  # type: ignore[arg-type]

    store._rows = recording  # type: ignore[method-assign]
    try:
        await store.queue_page(
            TaskKind.DECISION,
            viewer="alice",
            now=T0,
            groups=("credit",),
            after=("2025-03-01T10:00:00.000000Z", 1, 7),
        )
    finally:
        await store.stop()
    statement, params = seen[-1]
    conn = sqlite3.connect(tmp_path / "queue.db")
    try:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, params)]
    finally:
        conn.close()
    assert any("USING INDEX review_tasks_queue (kind=? AND <expr>>?)" in x for x in plan), plan
    assert not any("TEMP B-TREE" in x or x.startswith("SCAN t") for x in plan), plan


async def test_cancelled_caller_does_not_disturb_the_writer(store: AnyStore) -> None:
    """A caller cancelled while waiting leaves its write committed and the writer running."""
    d = make_decision(idempotency_key="cancel-me")
    call = asyncio.ensure_future(store.create_decision(d, [created_event(d)], []))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    again = make_decision(idempotency_key="cancel-me")
    assert await store.create_decision(again, [created_event(again)], []) == (d, False)


async def test_writer_cancelled_from_outside_answers_waiting_callers(location: str) -> None:
    """If the writer task dies, queued callers get StoreClosed instead of waiting forever."""
    s = open_store(location)
    await s.start()
    task = s._writer.task
    assert task is not None
    task.cancel()
    d = make_decision()
    with pytest.raises(StoreClosed):
        await s.create_decision(d, [], [])
    await s.stop()
