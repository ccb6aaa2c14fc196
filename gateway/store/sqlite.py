"""The embedded SQLite store: WAL, one writer that commits in groups, parallel readers.

Writes. Every change goes through one writer task. Callers put a job on a queue and await its
future; the writer takes everything queued (up to ``max_batch``), applies it in one
transaction, commits with ``synchronous=FULL``, and only then answers each caller. Under load a
single fsync covers hundreds of decisions; at low load a batch is a single job and nothing
waits for a timer.

The batch runs on a dedicated thread that owns a stdlib ``sqlite3`` connection, handed over
with one ``run_in_executor`` call per batch. aiosqlite has no public way to run a function on
its connection's thread, and driving the batch through its API costs one thread hop per
statement (SELECT, three ``executemany``, BEGIN, COMMIT); one hop per batch is the same idea
with the fewest hops, and keeps every statement of a batch on the same thread as a plain
function that is easy to reason about. Reads use aiosqlite connections (a small pool), which
run in parallel with the writer under WAL.

Each batch reads the chain head (last seq and hash) right after taking SQLite's write lock, so
another process appending to the same file (the CLI recording a key change) cannot make the
chain fork. When a batch fails it is rolled back, the head is restored, and the
batch is replayed one job per SAVEPOINT, so one bad job fails alone and leaves nothing
half-written; the good ones still commit together.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from gateway.audit.chain import GENESIS, format_ts
from gateway.errors import Conflict, FailedPrecondition, GatewayError, NotFound
from gateway.store import codec, failures
from gateway.store.migrations import apply_migrations
from gateway.store.probe import SQLITE_PROBE, WriteProbe
from gateway.store.sqlite_erase import SQLiteErasureMixin
from gateway.store.sqlite_reviews import SQLiteReviewsMixin
from gateway.store.sqlite_sessions import SQLiteSessionsMixin
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

_BUSY_TIMEOUT_MS = 10_000
_KEY_CHUNK = 400
"""(application, key) pairs per idempotency lookup, well under SQLite's variable limit."""


class StoreClosed(GatewayError):
    """The store is not running (not started yet, or stopped)."""


@dataclass(slots=True)
class StoreStats:
    """Counters of the writer, for tests, benchmarks and metrics."""

    transactions: int = 0
    """Write transactions committed."""
    jobs: int = 0
    """Write calls answered (successfully or not)."""
    batches: int = 0
    """Batches taken from the queue."""
    isolated_replays: int = 0
    """Batches that failed as a whole and were replayed one job per savepoint."""
    largest_batch: int = 0


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
class _Review:
    decision_id: str
    review: tuple[Any, ...]
    new_status: str
    final: bool
    final_output: str | None
    updated_at: str
    draft: codec.PreparedDraft
    expected: str
    expected_reviews: int | None
    fut: asyncio.Future[Any]


@dataclass(slots=True)
class _AddKey:
    row: tuple[Any, ...]
    drafts: list[codec.PreparedDraft]
    fut: asyncio.Future[Any]


@dataclass(slots=True)
class _RevokeKey:
    key_id: str
    drafts: list[codec.PreparedDraft]
    fut: asyncio.Future[Any]


@dataclass(slots=True)
class _Call:
    """A write composed elsewhere (`sqlite_reviews`), run inside the batch's transaction.

    ``fn(conn, now)`` returns the caller's result, or an exception instance to raise to the
    caller (checked before it writes anything); raising makes the batch replay in isolation.
    """

    fn: Callable[[sqlite3.Connection, str], Any]
    fut: asyncio.Future[Any]


_Job = _Create | _Review | _AddKey | _RevokeKey | _Call
_STOP = object()

# SQL below is assembled only from the constant column tuples in `codec` (S608 is about
# untrusted text in SQL; there is none); every value is a bound parameter.
_INSERT_DECISION = (
    f"INSERT INTO decisions ({', '.join(codec.DECISION_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.DECISION_COLUMNS))})"
)
_INSERT_TASK = (
    f"INSERT INTO review_tasks ({', '.join(codec.TASK_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.TASK_COLUMNS))})"
)
_INSERT_EVENT = (
    f"INSERT INTO audit_events ({', '.join(codec.EVENT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.EVENT_COLUMNS))})"
)
_INSERT_REVIEW = (
    "INSERT INTO reviews (decision_id, seq, reviewer, role, verdict, reason, output, at) "
    "SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?, ? FROM reviews WHERE decision_id = ?"
)
_INSERT_KEY = (
    f"INSERT INTO api_keys ({', '.join(codec.API_KEY_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.API_KEY_COLUMNS))}) "
    "ON CONFLICT (key_id) DO NOTHING"
)
_SELECT_KEY = f"SELECT {', '.join(codec.API_KEY_COLUMNS)} FROM api_keys WHERE key_id = ?"  # noqa: S608
_SELECT_TASKS = f"SELECT {', '.join(codec.TASK_COLUMNS)} FROM review_tasks"  # noqa: S608


def idempotency_lookup_sql(n: int) -> str:
    """Decisions matching any of ``n`` bound ``(application, idempotency_key)`` pairs.

    Written as a join against the pairs so SQLite searches the partial unique index once per
    pair; the shorter ``(application, idempotency_key) IN (VALUES ...)`` scans the whole index.
    """
    values = ", ".join(["(?, ?)"] * n)
    return (
        f"WITH k (application, idempotency_key) AS (VALUES {values}) "
        f"{codec.SELECT_DECISION} JOIN k ON d.application = k.application "
        "AND d.idempotency_key = k.idempotency_key WHERE d.idempotency_key != ''"
    )


class SQLiteStore(SQLiteReviewsMixin, SQLiteErasureMixin, SQLiteSessionsMixin):
    """`gateway.store.protocol.Store` on one SQLite file.

    Args:
        path: The database file; created, with its directory's WAL side files, when missing.
        max_batch: Most write jobs committed in one transaction.
        readers: Read connections, used in turn.
    """

    def __init__(self, path: Path, *, max_batch: int = 256, readers: int = 2) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if readers < 1:
            raise ValueError("readers must be at least 1")
        self.path = Path(path)
        self.max_batch = max_batch
        self.stats = StoreStats()
        self._n_readers = readers
        self._readers: list[aiosqlite.Connection] = []
        self._reader_turn = itertools.count()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        """Writer connection; touched only on the executor's one thread."""
        self._head: tuple[int, str] = (0, GENESIS)
        """Chain head including the transaction in progress (writer thread)."""
        self._committed_head: tuple[int, str] = (0, GENESIS)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._running = False
        self._stopping: asyncio.Task[None] | None = None
        self._probe = WriteProbe(self._probe_write)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open connections, apply numbered migrations, load the chain head, start the writer."""
        if self._running or self._stopping is not None:
            raise RuntimeError("SQLiteStore.start() called twice")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        try:
            await self._in_writer_thread(self._open_writer)
            for _ in range(self._n_readers):
                self._readers.append(await self._open_reader())
        except BaseException:
            await self._close_connections()
            raise
        self._queue = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop(), name="sqlite-writer")
        self._writer.add_done_callback(self._writer_done)
        self._running = True

    async def stop(self) -> None:
        """Flush every queued write, then close. Idempotent; later calls raise `StoreClosed`."""
        self._running = False
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        self._running = False
        if self._writer is not None:
            self._queue.put_nowait(_STOP)
            # wait() rather than await: a writer cancelled from outside must not stop the close.
            await asyncio.wait([self._writer])
            self._writer = None
        await self._close_connections()

    async def __aenter__(self) -> SQLiteStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _open_writer(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"{self.path}: cannot switch to WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            apply_migrations(conn, format_ts(datetime.now(UTC)))
            last = _read_head(conn)
        except BaseException:
            conn.close()
            raise
        self._head = self._committed_head = last
        self._conn = conn

    async def _open_reader(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path)
        try:
            await conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA query_only=ON")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _close_connections(self) -> None:
        readers, self._readers = self._readers, []
        for r in readers:
            await r.close()
        if self._executor is not None:
            if self._conn is not None:
                await self._in_writer_thread(self._close_writer)
            self._executor.shutdown(wait=True)
            self._executor = None

    def _close_writer(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _in_writer_thread(self, fn: Callable[[], T]) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _check_running(self) -> None:
        if not self._running:
            state = "stopped" if self._stopping is not None else "not started"
            raise StoreClosed(f"SQLite store {str(self.path)!r} is {state}")

    async def _submit(self, job: _Job) -> Any:
        self._check_running()
        self._queue.put_nowait(job)
        return await job.fut

    # -- writes ------------------------------------------------------------------------------

    async def create_decision(
        self,
        decision: Decision,
        events: Sequence[AuditDraft],
        tasks: Sequence[ReviewTask],
    ) -> tuple[Decision, bool]:
        """Persist a decision with its audit events and review tasks in one transaction.

        Returns ``(decision, True)`` once committed, or ``(existing, False)`` when the
        application already has a decision with this non-empty idempotency key (also when the
        other one is in the same batch); then nothing of this call is written.
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

        With ``expected_reviews``, the decision must also still have exactly that many reviews:
        two first approvals given at once must not both count as the first. A verdict that
        leaves the decision open releases its claim, so a second reviewer can take it.

        ``updated_at`` becomes ``review.at``. When ``new_status`` is final, the decision's open
        DECISION tasks are closed.

        Raises:
            Conflict: The decision's status is no longer ``expected``.
            NotFound: No decision has this id.
            FailedPrecondition: ``expected`` is a final status, which never changes.
        """
        self._check_running()
        if expected.is_final:
            raise FailedPrecondition(
                f"decision {decision_id!r}: status {expected.value} is final and cannot change"
            )
        job = _Review(
            decision_id=decision_id,
            review=codec.review_values(review),
            new_status=new_status.value,
            final=new_status.is_final,
            final_output=codec.dumps_opt(final_output),
            updated_at=format_ts(review.at),
            draft=codec.prepare_draft(event),
            expected=expected.value,
            expected_reviews=expected_reviews,
            fut=asyncio.get_running_loop().create_future(),
        )
        result: Decision = await self._submit(job)
        return result

    async def add_api_key(self, key: ApiKey, event: AuditDraft | None = None) -> None:
        """Store a new key, with ``event`` if given. Raises `Conflict` when the id is taken."""
        self._check_running()
        fut = asyncio.get_running_loop().create_future()
        drafts = [codec.prepare_draft(event)] if event is not None else []
        await self._submit(_AddKey(codec.api_key_row(key), drafts, fut))

    async def revoke_api_key(self, key_id: str, event: AuditDraft | None = None) -> bool:
        """Revoke a key, with ``event`` if given; True when this call revoked it, False (and no
        event) when it is missing or already revoked."""
        self._check_running()
        fut = asyncio.get_running_loop().create_future()
        drafts = [codec.prepare_draft(event)] if event is not None else []
        result: bool = await self._submit(_RevokeKey(key_id, drafts, fut))
        return result

    # -- the writer --------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
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
                    assert self._executor is not None
                    outcomes = await loop.run_in_executor(self._executor, self._run_batch, batch)
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
            # Left early only if this task was cancelled from outside mid-batch.
            lost = StoreClosed("SQLite writer stopped; the outcome of this write is unknown")
            for job in batch:
                if not job.fut.done():
                    job.fut.set_exception(lost)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        """Answer every queued caller once the writer has ended, however it ended.

        A callback rather than a ``finally``: a task cancelled before its first step never
        runs its body at all.
        """
        self._running = False
        closed = StoreClosed("SQLite writer stopped before this write was taken")
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not _STOP and not job.fut.done():
                job.fut.set_exception(closed)

    def _run_batch(self, batch: list[_Job]) -> list[Any]:
        """Apply ``batch`` in one transaction (writer thread). One outcome per job."""
        conn = self._conn
        if conn is None:
            return [StoreClosed("SQLite store is closed")] * len(batch)
        now = format_ts(datetime.now(UTC))
        head = self._head
        committing = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._head = _read_head(conn)
            outcomes = self._apply(conn, batch, now)
            committing = True
            conn.execute("COMMIT")
            self._committed_head = self._head
            self.stats.transactions += 1
            return outcomes
        except Exception as exc:
            self._rollback(conn)
            self._head = head
            failed = failures.failed_batch(exc, committing=committing)
            if len(batch) == 1 or isinstance(failed, failures.LostAtCommit):
                return [failed] * len(batch)
        return self._run_isolated(conn, batch, now)

    def _run_isolated(self, conn: sqlite3.Connection, batch: list[_Job], now: str) -> list[Any]:
        """Replay a failed batch one job per savepoint, so only the bad jobs fail."""
        self.stats.isolated_replays += 1
        head = self._head
        committing = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._head = _read_head(conn)
            outcomes: list[Any] = []
            for job in batch:
                job_head = self._head
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.extend(self._apply(conn, [job], now))
                    conn.execute("RELEASE job")
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    self._head = job_head
                    outcomes.append(exc)
            committing = True
            conn.execute("COMMIT")
            self._committed_head = self._head
            self.stats.transactions += 1
            return outcomes
        except Exception as exc:
            self._rollback(conn)
            self._head = head
            return [failures.failed_batch(exc, committing=committing)] * len(batch)

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            # SQLite may have rolled back already (e.g. after SQLITE_FULL)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _apply(self, conn: sqlite3.Connection, batch: list[_Job], now: str) -> list[Any]:
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
                outcomes.extend(self._apply_creates(conn, creates, now))
                i = j
                continue
            if isinstance(job, _Review):
                outcomes.append(self._apply_review(conn, job, now))
            elif isinstance(job, _Call):
                outcomes.append(job.fn(conn, now))
            elif isinstance(job, _AddKey):
                cur = conn.execute(_INSERT_KEY, job.row)
                added = cur.rowcount == 1
                if added:
                    self._append_events(conn, job.drafts, now)
                outcomes.append(None if added else Conflict(f"api key {job.row[0]!r} exists"))
            else:
                cur = conn.execute(
                    "UPDATE api_keys SET revoked = 1 WHERE key_id = ? AND revoked = 0",
                    (job.key_id,),
                )
                revoked = cur.rowcount == 1
                if revoked:
                    self._append_events(conn, job.drafts, now)
                outcomes.append(revoked)
            i += 1
        return outcomes

    def _apply_creates(self, conn: sqlite3.Connection, jobs: list[_Create], now: str) -> list[Any]:
        existing = self._existing_by_key(conn, {k for j in jobs if (k := j.key) is not None})
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
        if decisions:
            conn.executemany(_INSERT_DECISION, decisions)
        if drafts:
            conn.executemany(_INSERT_EVENT, self._chain(drafts, now))
        if tasks:
            conn.executemany(_INSERT_TASK, tasks)
        return outcomes

    @staticmethod
    def _existing_by_key(
        conn: sqlite3.Connection, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], Decision]:
        found: dict[tuple[str, str], Decision] = {}
        pairs = list(keys)
        for start in range(0, len(pairs), _KEY_CHUNK):
            chunk = pairs[start : start + _KEY_CHUNK]
            params = [v for pair in chunk for v in pair]
            for row in conn.execute(idempotency_lookup_sql(len(chunk)), params):
                d = codec.decision_from_row(row[:-1], row[-1])
                found[(d.application, d.idempotency_key)] = d
        return found

    def _apply_review(self, conn: sqlite3.Connection, job: _Review, now: str) -> Any:
        cur = conn.execute(
            "UPDATE decisions SET status = ?, final_output = ?, updated_at = ? "
            "WHERE id = ? AND status = ? AND (? IS NULL OR ? = "
            "(SELECT COUNT(*) FROM reviews r WHERE r.decision_id = decisions.id))",
            (
                job.new_status,
                job.final_output,
                job.updated_at,
                job.decision_id,
                job.expected,
                job.expected_reviews,
                job.expected_reviews,
            ),
        )
        if cur.rowcount != 1:
            row = conn.execute(
                "SELECT status FROM decisions WHERE id = ?", (job.decision_id,)
            ).fetchone()
            if row is None:
                return NotFound("decision", job.decision_id)
            if row[0] == job.expected:
                return Conflict(
                    f"decision {job.decision_id!r} was reviewed by someone else meanwhile; "
                    "reload it and decide again"
                )
            return Conflict(
                f"decision {job.decision_id!r} is {row[0]}, not {job.expected}: "
                "someone else changed it first"
            )
        conn.execute(_INSERT_REVIEW, (job.decision_id, *job.review, job.decision_id))
        if job.final:
            conn.execute(
                "UPDATE review_tasks SET closed_at = ? "
                "WHERE decision_id = ? AND kind = 'decision' AND closed_at IS NULL",
                (now, job.decision_id),
            )
        else:
            conn.execute(
                "UPDATE review_tasks SET claimed_by = NULL, claimed_until = NULL "
                "WHERE decision_id = ? AND kind = 'decision' AND closed_at IS NULL",
                (job.decision_id,),
            )
        conn.executemany(_INSERT_EVENT, self._chain([job.draft], now))
        row = conn.execute(
            f"{codec.SELECT_DECISION} WHERE d.id = ?",
            (job.decision_id,),
        ).fetchone()
        return codec.decision_from_row(row[:-1], row[-1])

    async def probe(self) -> bool:
        """True when a write commits now (at most one probe write a second; see `WriteProbe`)."""
        return await self._probe()

    async def _probe_write(self) -> None:
        await self._write(lambda conn, now: conn.execute(SQLITE_PROBE, (now,)).close())

    async def _write(self, fn: Callable[[sqlite3.Connection, str], T]) -> T:
        """Run ``fn(conn, now)`` in the writer's next transaction; see `_Call`."""
        self._check_running()
        result: T = await self._submit(_Call(fn, asyncio.get_running_loop().create_future()))
        return result

    def _append_events(
        self, conn: sqlite3.Connection, drafts: list[codec.PreparedDraft], now: str
    ) -> None:
        """Chain and insert audit events inside the writer's transaction."""
        conn.executemany(_INSERT_EVENT, self._chain(drafts, now))

    def _chain(self, drafts: list[codec.PreparedDraft], now: str) -> list[tuple[Any, ...]]:
        """Assign seq, prev_hash and hash to ``drafts``, advancing the in-memory head."""
        rows, self._head = codec.chain_rows(drafts, self._head, now)
        return rows

    # -- reads -------------------------------------------------------------------------------

    async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]:
        self._check_running()
        reader = self._readers[next(self._reader_turn) % len(self._readers)]
        try:
            return list(await reader.execute_fetchall(sql, params))
        except Exception as exc:
            failures.check_read(exc)
            raise

    async def get_decision(self, decision_id: str) -> Decision | None:
        rows = await self._fetchall(f"{codec.SELECT_DECISION} WHERE d.id = ?", (decision_id,))
        return codec.decision_from_row(rows[0][:-1], rows[0][-1]) if rows else None

    async def find_by_idempotency_key(self, application: str, key: str) -> Decision | None:
        if not key:
            return None
        rows = await self._fetchall(
            f"{codec.SELECT_DECISION} WHERE d.application = ? AND d.idempotency_key = ? "
            "AND d.idempotency_key != ''",
            (application, key),
        )
        return codec.decision_from_row(rows[0][:-1], rows[0][-1]) if rows else None

    async def list_review_tasks(
        self, kind: TaskKind, *, limit: int = 100, open_only: bool = True
    ) -> list[ReviewTask]:
        """Tasks of ``kind``, most urgent first: earliest deadline, no deadline last."""
        where = "WHERE kind = ? AND closed_at IS NULL" if open_only else "WHERE kind = ?"
        rows = await self._fetchall(
            f"{_SELECT_TASKS} {where} ORDER BY ifnull(deadline, '~'), tier_rank, id LIMIT ?",
            (kind.value, limit),
        )
        return [codec.task_from_row(r) for r in rows]

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = await self._fetchall(_SELECT_KEY, (key_id,))
        return codec.api_key_from_row(rows[0]) if rows else None

    async def audit_events(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEvent]:
        """Events in chain order with ``seq > after_seq``."""
        rows = await self._fetchall(
            f"{codec.SELECT_EVENTS} WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        )
        return [codec.event_from_row(r) for r in rows]

    async def audit_events_for(self, decision_id: str) -> list[AuditEvent]:
        """Every event of one decision, in chain order."""
        rows = await self._fetchall(
            f"{codec.SELECT_EVENTS} WHERE decision_id = ? ORDER BY seq", (decision_id,)
        )
        return [codec.event_from_row(r) for r in rows]

    def chain_head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last committed event (``(0, GENESIS)`` for an empty chain)."""
        return self._committed_head

    def subscribe_changes(self, callback: Callable[[str], None]) -> None:
        """Nothing to subscribe to: one process owns the file and publishes its own changes."""


def _read_head(conn: sqlite3.Connection) -> tuple[int, str]:
    """The chain head as stored. Read inside each write transaction (which holds SQLite's write
    lock), so another process appending to the same file, such as the CLI recording a key
    change, never makes this writer fork the chain. One seek to the last row per batch."""
    last = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if last is None else (last[0], last[1])
