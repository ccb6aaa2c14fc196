"""The PostgreSQL store: several gateway replicas on one database, one audit chain.

Writes. As in the SQLite store, every change goes through one writer task per replica that
takes everything queued (up to ``max_batch``) and applies it in one transaction, answering the
callers only after the commit. Each transaction first takes a transaction-scoped advisory lock
(`CHAIN_LOCK`) and then reads the chain head inside the transaction, so the writers of all
replicas append to one chain in turn, with no forks and no gaps; the lock is released by the
commit itself. The idempotency lookup runs under the same lock, so two replicas cannot both
create a decision for one key (the unique index backs this up). A batch that fails is rolled
back and replayed one job per savepoint, so one bad job fails alone.

Changes that other replicas must see (a decision waiting for review, a verdict, an expiry) are
announced with ``NOTIFY`` inside the transaction, so the announcement is delivered only if the
change commits. Each replica ``LISTEN``s on one connection and hands the decision ids to the
callback given to `subscribe_changes` (the gateway fetches the decision and publishes it to its
in-process notifier). A lost connection is re-established (`gateway.store.pg_listen`), and then
the callbacks given to `subscribe_resync` are told that announcements may have been missed.
Decisions made automatically are not announced: nobody can be waiting on them, and they are
most of the traffic.

Claims do not go through the writer: they write no audit event, and row locks with
``FOR UPDATE SKIP LOCKED`` keep two reviewers (on any replicas) from taking one item.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import structlog

from gateway.audit.chain import GENESIS, format_ts
from gateway.errors import Conflict, FailedPrecondition, NotFound
from gateway.store import codec, failures
from gateway.store.pg_erase import PostgresErasureMixin
from gateway.store.pg_listen import Backoff, ChangeListener
from gateway.store.pg_migrations import apply_pg_migrations
from gateway.store.pg_reviews import PostgresReviewsMixin
from gateway.store.pg_sessions import PostgresSessionsMixin
from gateway.store.pg_sql import (
    INSERT_DECISION,
    INSERT_EVENT,
    INSERT_TASK,
    SELECT_DECISION,
    SELECT_EVENTS,
    SELECT_KEY,
    SELECT_TASKS,
)
from gateway.store.probe import POSTGRES_PROBE, WriteProbe
from gateway.store.sqlite import StoreClosed, StoreStats
from gateway.types import (
    ApiKey,
    AuditDraft,
    AuditEvent,
    Decision,
    Review,
    ReviewTask,
    Status,
    TaskKind,
)

T = TypeVar("T")
log = structlog.get_logger("gateway.store.postgres")

CHAIN_LOCK = 0x6869_746C_6368_6169
"""Advisory lock key every audit-chain append holds until its commit ("hitlchai")."""
CHANNEL = "hitl_changes"
"""NOTIFY channel; the payload is ``<origin> <decision id>``."""

ChangeCallback = Callable[[str], None]


@dataclass(slots=True)
class Tx:
    """One write transaction of the writer: its connection, time and chain position."""

    conn: asyncpg.Connection
    now: str
    head: tuple[int, str]
    changed: list[str] = field(default_factory=list)
    """Decision ids to announce to other replicas when this transaction commits."""

    async def append(self, drafts: Sequence[codec.PreparedDraft]) -> None:
        """Chain and insert audit events after the current head."""
        rows, head = codec.chain_rows(drafts, self.head, self.now)
        if rows:
            await self.conn.executemany(INSERT_EVENT, rows)
        self.head = head


WriteFn = Callable[[Tx], Awaitable[Any]]
"""A write run inside the writer's transaction. Returns the caller's result, or an exception
instance to raise to the caller (decided before it writes anything); raising makes the batch
replay in isolation."""


@dataclass(slots=True)
class _Create:
    decision: Decision
    row: tuple[Any, ...]
    drafts: list[codec.PreparedDraft]
    tasks: list[tuple[Any, ...]]
    fut: asyncio.Future[Any]

    @property
    def key(self) -> tuple[str, str] | None:
        d = self.decision
        return (d.application, d.idempotency_key) if d.idempotency_key else None


@dataclass(slots=True)
class _Call:
    fn: WriteFn
    fut: asyncio.Future[Any]


_Job = _Create | _Call
_STOP = object()


def _decision(row: Sequence[Any]) -> Decision:
    values = tuple(row)
    return codec.decision_from_row(values[:-1], values[-1])


class PostgresStore(PostgresReviewsMixin, PostgresErasureMixin, PostgresSessionsMixin):
    """`gateway.store.protocol.ReviewStore` on a PostgreSQL database.

    Args:
        dsn: ``postgresql://user:password@host:port/database``; other query parameters are
            server settings (say ``?search_path=tenant``).
        max_batch: Most write jobs committed in one transaction.
        pool_size: Most connections for reads, claims and the writer.
        listen_backoff: Waits between attempts to listen again after losing the connection.
    """

    def __init__(
        self,
        dsn: str,
        *,
        max_batch: int = 256,
        pool_size: int = 8,
        listen_backoff: Backoff | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if pool_size < 2:
            raise ValueError("pool_size must be at least 2")
        self.dsn = dsn
        self.max_batch = max_batch
        self.stats = StoreStats()
        self.origin = uuid.uuid4().hex
        """This store's name in NOTIFY payloads, so it skips its own announcements."""
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._listener = ChangeListener(
            dsn, CHANNEL, self._on_notify, self._on_resync, listen_backoff
        )
        self._callbacks: list[ChangeCallback] = []
        self._resync_callbacks: list[Callable[[], None]] = []
        self._committed_head: tuple[int, str] = (0, GENESIS)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._running = False
        self._stopping: asyncio.Task[None] | None = None
        self._probe = WriteProbe(self._probe_write)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, apply numbered migrations, load the chain head, listen, start the writer."""
        if self._running or self._stopping is not None:
            raise RuntimeError("PostgresStore.start() called twice")
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=2, max_size=self._pool_size)
            async with self._pool.acquire() as conn:
                await apply_pg_migrations(conn, format_ts(datetime.now(UTC)))
                row = await conn.fetchrow(
                    "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
                )
            if row is not None:
                self._committed_head = (row[0], row[1])
            await self._listener.start()
        except BaseException:
            await self._close_connections()
            raise
        self._queue = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop(), name="postgres-writer")
        self._writer.add_done_callback(self._writer_done)
        self._running = True

    async def stop(self) -> None:
        """Flush every queued write, then close. Idempotent; later calls raise `StoreClosed`."""
        self._running = False
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        if self._writer is not None:
            self._queue.put_nowait(_STOP)
            await asyncio.wait([self._writer])
            self._writer = None
        await self._close_connections()

    async def _close_connections(self) -> None:
        await self._listener.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> PostgresStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _check_running(self) -> None:
        if not self._running:
            state = "stopped" if self._stopping is not None else "not started"
            raise StoreClosed(f"PostgreSQL store is {state}")

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool (for the audit reader); raises `StoreClosed` when closed."""
        self._check_running()
        assert self._pool is not None
        return self._pool

    # -- changes made on other replicas ------------------------------------------------------

    def subscribe_changes(self, callback: ChangeCallback) -> None:
        """Call ``callback(decision_id)`` for each change committed by another replica."""
        self._callbacks.append(callback)

    def subscribe_resync(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after listening resumes from a lost connection: changes made
        meanwhile were not announced here, so anything waited on must be read again."""
        self._resync_callbacks.append(callback)

    @property
    def listener(self) -> ChangeListener:
        """The connection listening for other replicas' changes (for health and tests)."""
        return self._listener

    def _on_resync(self) -> None:
        for callback in self._resync_callbacks:
            try:
                callback()
            except Exception:  # one broken subscriber must not silence the others
                log.exception("store.resync_callback_failed")

    def _on_notify(self, payload: str) -> None:
        origin, _, decision_id = payload.partition(" ")
        if origin == self.origin or not decision_id:
            return
        for callback in self._callbacks:
            try:
                callback(decision_id)
            except Exception:  # one broken subscriber must not silence the others
                log.exception("store.change_callback_failed", decision_id=decision_id)

    # -- writes ------------------------------------------------------------------------------

    async def _submit(self, job: _Job) -> Any:
        self._check_running()
        self._queue.put_nowait(job)
        return await job.fut

    async def probe(self) -> bool:
        """True when a write commits now (at most one probe write a second; see `WriteProbe`)."""
        return await self._probe()

    async def _probe_write(self) -> None:
        async def write(tx: Tx) -> None:
            await tx.conn.execute(POSTGRES_PROBE, tx.now)

        await self._write(write)

    async def _write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``fn(tx)`` in the writer's next transaction; see `WriteFn`."""
        self._check_running()
        result: T = await self._submit(_Call(fn, asyncio.get_running_loop().create_future()))
        return result

    async def create_decision(
        self,
        decision: Decision,
        events: Sequence[AuditDraft],
        tasks: Sequence[ReviewTask],
    ) -> tuple[Decision, bool]:
        """Persist a decision with its audit events and review tasks in one transaction.

        Returns ``(decision, True)`` once committed, or ``(existing, False)`` when the
        application already has a decision with this non-empty idempotency key (written by
        any replica, or earlier in the same batch); then nothing of this call is written.
        """
        self._check_running()
        job = _Create(
            decision=decision,
            row=codec.decision_row(decision),
            drafts=[codec.prepare_draft(e) for e in events],
            tasks=[codec.task_row(t) for t in tasks],
            fut=asyncio.get_running_loop().create_future(),
        )
        result: tuple[Decision, bool] = await self._submit(job)
        return result

    async def record_review(
        self,
        decision_id: str,
        review: Review,
        new_status: Status,
        final_output: dict[str, object] | None,
        event: AuditDraft,
        expected: Status,
        expected_reviews: int | None = None,
    ) -> Decision:
        """Append a review and move the decision to ``new_status`` if it is still ``expected``.

        Same contract as `SQLiteStore.record_review`.

        Raises:
            Conflict: The decision's status (or number of reviews) is no longer as expected.
            NotFound: No decision has this id.
            FailedPrecondition: ``expected`` is a final status, which never changes.
        """
        self._check_running()
        if expected.is_final:
            raise FailedPrecondition(
                f"decision {decision_id!r}: status {expected.value} is final and cannot change"
            )
        values = codec.review_values(review)
        output = codec.dumps_opt(final_output)
        draft = codec.prepare_draft(event)
        updated_at = format_ts(review.at)

        async def apply(tx: Tx) -> Any:
            status = await tx.conn.fetchval(
                "UPDATE decisions SET status = $1, final_output = $2, updated_at = $3 "
                "WHERE id = $4 AND status = $5 AND ($6::bigint IS NULL OR $6::bigint = "
                "(SELECT COUNT(*) FROM reviews r WHERE r.decision_id = decisions.id)) "
                "RETURNING status",
                new_status.value,
                output,
                updated_at,
                decision_id,
                expected.value,
                expected_reviews,
            )
            if status is None:
                current = await tx.conn.fetchval(
                    "SELECT status FROM decisions WHERE id = $1", decision_id
                )
                if current is None:
                    return NotFound("decision", decision_id)
                if current == expected.value:
                    return Conflict(
                        f"decision {decision_id!r} was reviewed by someone else meanwhile; "
                        "reload it and decide again"
                    )
                return Conflict(
                    f"decision {decision_id!r} is {current}, not {expected.value}: "
                    "someone else changed it first"
                )
            await tx.conn.execute(
                "INSERT INTO reviews (decision_id, seq, reviewer, role, verdict, reason, output, "
                "at) SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7 "
                "FROM reviews WHERE decision_id = $1",
                decision_id,
                *values,
            )
            if new_status.is_final:
                await tx.conn.execute(
                    "UPDATE review_tasks SET closed_at = $1 "
                    "WHERE decision_id = $2 AND kind = 'decision' AND closed_at IS NULL",
                    tx.now,
                    decision_id,
                )
            else:
                await tx.conn.execute(
                    "UPDATE review_tasks SET claimed_by = NULL, claimed_until = NULL "
                    "WHERE decision_id = $1 AND kind = 'decision' AND closed_at IS NULL",
                    decision_id,
                )
            await tx.append([draft])
            tx.changed.append(decision_id)
            row = await tx.conn.fetchrow(f"{SELECT_DECISION} WHERE d.id = $1", decision_id)
            return _decision(row)

        return await self._write(apply)

    async def add_api_key(self, key: ApiKey, event: AuditDraft | None = None) -> None:
        """Store a new key, with ``event`` if given. Raises `Conflict` when the id is taken."""
        row = codec.api_key_row(key)
        drafts = [codec.prepare_draft(event)] if event is not None else []

        async def add(tx: Tx) -> Any:
            done = await tx.conn.fetchval(
                "INSERT INTO api_keys (key_id, secret_hash, applications, created_at, revoked, "
                "role) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id) DO NOTHING "
                "RETURNING 1",
                *row,
            )
            if not done:
                return Conflict(f"api key {key.key_id!r} exists")
            await tx.append(drafts)
            return None

        await self._write(add)

    async def revoke_api_key(self, key_id: str, event: AuditDraft | None = None) -> bool:
        """Revoke a key, with ``event`` if given; True when this call revoked it, False (and no
        event) when it is missing or already revoked."""
        drafts = [codec.prepare_draft(event)] if event is not None else []

        async def revoke(tx: Tx) -> bool:
            done = await tx.conn.fetchval(
                "UPDATE api_keys SET revoked = 1 WHERE key_id = $1 AND revoked = 0 RETURNING 1",
                key_id,
            )
            if done:
                await tx.append(drafts)
            return bool(done)

        return await self._write(revoke)

    # -- the writer --------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        queue = self._queue
        batch: list[_Job] = []
        stop = False
        try:
            while not stop:
                first = await queue.get()
                if first is _STOP:
                    break
                batch = [first]
                while len(batch) < self.max_batch and not queue.empty():
                    job = queue.get_nowait()
                    if job is _STOP:
                        stop = True
                        break
                    batch.append(job)
                try:
                    outcomes = await self._run_batch(batch)
                except Exception as exc:  # _run_batch answers every job; this is a last resort
                    outcomes = [exc] * len(batch)
                self.stats.batches += 1
                self.stats.jobs += len(batch)
                self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
                for job, outcome in zip(batch, outcomes, strict=True):
                    if job.fut.done():  # the caller was cancelled; the write stands
                        continue
                    if isinstance(outcome, BaseException):
                        what = "the decision" if isinstance(job, _Create) else "the change"
                        job.fut.set_exception(failures.for_caller(outcome, what))
                    else:
                        job.fut.set_result(outcome)
                batch = []
        finally:
            lost = StoreClosed("PostgreSQL writer stopped; the outcome of this write is unknown")
            for job in batch:
                if not job.fut.done():
                    job.fut.set_exception(lost)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        """Answer every queued caller once the writer has ended, however it ended."""
        self._running = False
        closed = StoreClosed("PostgreSQL writer stopped before this write was taken")
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not _STOP and not job.fut.done():
                job.fut.set_exception(closed)

    async def _begin(self, conn: asyncpg.Connection) -> Tx:
        """Take the chain lock and read the head: from here to the commit the chain is ours."""
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK)
        row = await conn.fetchrow("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        head = (0, GENESIS) if row is None else (row[0], row[1])
        return Tx(conn, format_ts(datetime.now(UTC)), head)

    @staticmethod
    async def _announce(tx: Tx, origin: str) -> None:
        if tx.changed:
            await tx.conn.execute(
                "SELECT pg_notify($1, $2 || ' ' || id) FROM unnest($3::text[]) AS id",
                CHANNEL,
                origin,
                sorted(set(tx.changed)),
            )

    async def _run_batch(self, batch: list[_Job]) -> list[Any]:
        """Apply ``batch`` in one transaction. One outcome per job."""
        if self._pool is None:
            return [StoreClosed("PostgreSQL store is closed")] * len(batch)
        async with self._pool.acquire() as conn:
            committing = False
            try:
                async with conn.transaction():
                    tx = await self._begin(conn)
                    outcomes = await self._apply(tx, batch)
                    await self._announce(tx, self.origin)
                    committing = True  # leaving the block sends COMMIT
                self._committed(tx.head)
                return outcomes
            except Exception as exc:
                failed = failures.failed_batch(exc, committing=committing)
                if len(batch) == 1 or isinstance(failed, failures.LostAtCommit):
                    return [failed] * len(batch)
            return await self._run_isolated(conn, batch)

    async def _run_isolated(self, conn: asyncpg.Connection, batch: list[_Job]) -> list[Any]:
        """Replay a failed batch one job per savepoint, so only the bad jobs fail."""
        self.stats.isolated_replays += 1
        committing = False
        try:
            async with conn.transaction():
                tx = await self._begin(conn)
                outcomes: list[Any] = []
                for job in batch:
                    head, changed = tx.head, len(tx.changed)
                    try:
                        async with conn.transaction():  # a savepoint
                            outcomes.extend(await self._apply(tx, [job]))
                    except Exception as exc:
                        tx.head = head
                        del tx.changed[changed:]
                        outcomes.append(exc)
                await self._announce(tx, self.origin)
                committing = True
            self._committed(tx.head)
            return outcomes
        except Exception as exc:
            return [failures.failed_batch(exc, committing=committing)] * len(batch)

    def _committed(self, head: tuple[int, str]) -> None:
        self.stats.transactions += 1
        if head[0] > self._committed_head[0]:
            self._committed_head = head

    async def _apply(self, tx: Tx, batch: list[_Job]) -> list[Any]:
        """Apply jobs in order, runs of creates in bulk. Raises on unexpected SQL errors."""
        outcomes: list[Any] = []
        i = 0
        while i < len(batch):
            job = batch[i]
            if isinstance(job, _Create):
                j = i + 1
                while j < len(batch) and isinstance(batch[j], _Create):
                    j += 1
                creates: list[_Create] = batch[i:j]  # type: ignore[assignment]
                outcomes.extend(await self._apply_creates(tx, creates))
                i = j
                continue
            outcomes.append(await job.fn(tx))
            i += 1
        return outcomes

    async def _apply_creates(self, tx: Tx, jobs: list[_Create]) -> list[Any]:
        keys = {k for j in jobs if (k := j.key) is not None}
        existing: dict[tuple[str, str], Decision] = {}
        if keys:
            apps, idem = zip(*keys, strict=True)
            for row in await tx.conn.fetch(
                f"{SELECT_DECISION} JOIN unnest($1::text[], $2::text[]) AS k (app, key) "
                "ON d.application = k.app AND d.idempotency_key = k.key "
                "WHERE d.idempotency_key <> ''",
                list(apps),
                list(idem),
            ):
                d = _decision(row)
                existing[(d.application, d.idempotency_key)] = d
        outcomes: list[Any] = []
        decisions: list[tuple[Any, ...]] = []
        drafts: list[codec.PreparedDraft] = []
        tasks: list[tuple[Any, ...]] = []
        for job in jobs:
            key = job.key
            if key is not None:
                found = existing.get(key)
                if found is not None:
                    outcomes.append((found, False))
                    continue
                existing[key] = job.decision  # a later job of this batch with the key gets it
            outcomes.append((job.decision, True))
            decisions.append(job.row)
            drafts.extend(job.drafts)
            tasks.extend(job.tasks)
            if job.tasks:
                tx.changed.append(job.decision.id)
        if decisions:
            await tx.conn.executemany(INSERT_DECISION, decisions)
        await tx.append(drafts)
        if tasks:
            await tx.conn.executemany(INSERT_TASK, tasks)
        return outcomes

    # -- reads -------------------------------------------------------------------------------

    async def _fetch(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await self.pool.fetch(sql, *params)
        except Exception as exc:
            failures.check_read(exc)
            raise
        return rows

    async def get_decision(self, decision_id: str) -> Decision | None:
        rows = await self._fetch(f"{SELECT_DECISION} WHERE d.id = $1", decision_id)
        return _decision(rows[0]) if rows else None

    async def find_by_idempotency_key(self, application: str, key: str) -> Decision | None:
        if not key:
            return None
        rows = await self._fetch(
            f"{SELECT_DECISION} WHERE d.application = $1 AND d.idempotency_key = $2",
            application,
            key,
        )
        return _decision(rows[0]) if rows else None

    async def list_review_tasks(
        self, kind: TaskKind, *, limit: int = 100, open_only: bool = True
    ) -> list[ReviewTask]:
        """Tasks of ``kind``, most urgent first: earliest deadline, no deadline last."""
        where = "WHERE kind = $1 AND closed_at IS NULL" if open_only else "WHERE kind = $1"
        rows = await self._fetch(
            f"{SELECT_TASKS} {where} ORDER BY COALESCE(deadline, '~'), tier_rank, id LIMIT $2",
            kind.value,
            limit,
        )
        return [codec.task_from_row(tuple(r)) for r in rows]

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = await self._fetch(SELECT_KEY, key_id)
        return codec.api_key_from_row(tuple(rows[0])) if rows else None

    async def audit_events(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEvent]:
        """Events in chain order with ``seq > after_seq``."""
        rows = await self._fetch(
            f"{SELECT_EVENTS} WHERE seq > $1 ORDER BY seq LIMIT $2", after_seq, limit
        )
        return [codec.event_from_row(tuple(r)) for r in rows]

    async def audit_events_for(self, decision_id: str) -> list[AuditEvent]:
        """Every event of one decision, in chain order."""
        rows = await self._fetch(
            f"{SELECT_EVENTS} WHERE decision_id = $1 ORDER BY seq", decision_id
        )
        return [codec.event_from_row(tuple(r)) for r in rows]

    def chain_head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last event this replica committed or saw at start."""
        return self._committed_head
