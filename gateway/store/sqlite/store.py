"""The embedded SQLite store: WAL, one writer that commits in groups, parallel readers.

Writes go through the group-commit writer (`gateway.store.writer`) and commit with
``synchronous=FULL``. Each batch runs on a dedicated thread that owns a stdlib ``sqlite3``
connection, handed over with one ``run_in_executor`` call per batch. aiosqlite has no public way
to run a function on its connection's thread, and driving the batch through its API costs one
thread hop per statement (SELECT, three ``executemany``, BEGIN, COMMIT); one hop per batch is the
same idea with the fewest hops, and keeps every statement of a batch on the same thread as a
plain function that is easy to reason about. Reads use aiosqlite connections (a small pool),
which run in parallel with the writer under WAL.

Each batch reads the chain head (last seq and hash) right after taking SQLite's write lock, so
another process appending to the same file (the CLI recording a key change) cannot make the
chain fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.chain import GENESIS
from gateway.modelrisk import monitor
from gateway.store import codec, failures, sql
from gateway.store.accounts import AccountsMixin
from gateway.store.base import StoreBase
from gateway.store.callbacks import INSERT_CALLBACK
from gateway.store.erasure import ErasureMixin
from gateway.store.models import ModelsMixin
from gateway.store.monitoring import UPSERT_COUNT, UPSERT_OUTPUT, MonitoringMixin
from gateway.store.policies import PoliciesMixin
from gateway.store.protocol import AuditSide
from gateway.store.qa import QAMixin
from gateway.store.reviews import ReviewsMixin
from gateway.store.sessions import SessionsMixin
from gateway.store.shadow import ShadowMixin
from gateway.store.sla import SlaMixin
from gateway.store.sqlite.audit import CheckpointWriter, SQLiteAuditLog
from gateway.store.sqlite.changes import OtherProcesses, OwnCommits
from gateway.store.sqlite.erasure import SQLiteErasureMixin
from gateway.store.sqlite.migrations import apply_migrations
from gateway.store.sqlite.sla import SQLiteSlaMixin
from gateway.store.switches import SwitchesMixin
from gateway.store.tx import SQLiteTx
from gateway.store.writer import (
    Create,
    GroupWriter,
    Job,
    StoreClosed,
    drive,
    plan_creates,
    run_batch,
)
from gateway.timefmt import format_ts
from gateway.types import (
    Decision,
)

T = TypeVar("T")

_BUSY_TIMEOUT_MS = 10_000
_KEY_CHUNK = 400
"""(application, key) pairs per idempotency lookup, well under SQLite's variable limit."""


_INSERT_DECISION = sql.INSERT_DECISION
_INSERT_TASK = sql.INSERT_TASK


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


class SQLiteStore(
    StoreBase,
    ReviewsMixin,
    SQLiteSlaMixin,
    SlaMixin,
    QAMixin,
    AccountsMixin,
    SwitchesMixin,
    PoliciesMixin,
    ShadowMixin,
    ModelsMixin,
    MonitoringMixin,
    SQLiteErasureMixin,
    ErasureMixin,
    SessionsMixin,
):
    """`gateway.store.protocol.Store` on one SQLite file.

    Args:
        path: The database file; created, with its directory's WAL side files, when missing.
        max_batch: Most write jobs committed in one transaction.
        readers: Read connections, used in turn.
    """

    _SELECT_DECISION = codec.SELECT_DECISION
    _DEADLINE_ORDER = "ifnull(t.deadline, '~')"  # as the queue index spells it
    _FIND_TEXT = "instr"
    _SKIP_LOCKED = ""  # one writer: nobody else holds the row

    def __init__(
        self, path: Path, *, max_batch: int = 256, readers: int = 2, shared: bool = False
    ) -> None:
        if readers < 1:
            raise ValueError("readers must be at least 1")
        self.path = Path(path)
        super().__init__(
            GroupWriter(
                self._in_thread, max_batch=max_batch, name=f"SQLite store {str(self.path)!r}"
            )
        )
        self._n_readers = readers
        self._readers: list[aiosqlite.Connection] = []
        self._reader_turn = itertools.count()
        self._executor: ThreadPoolExecutor | None = None
        self._session = _Session(self)
        self._policy_callbacks: list[Callable[[], None]] = []
        self._conn: sqlite3.Connection | None = None
        """Writer connection; touched only on the executor's one thread."""
        self._own = OwnCommits()
        self._change_callbacks: list[Callable[[str], None]] = []
        self._others = (
            OtherProcesses(self.path, self._own, self._changed_elsewhere) if shared else None
        )
        """With ``shared`` (several worker processes on the file): hears their changes."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        await self._in_writer_thread(self._open_writer)
        for _ in range(self._n_readers):
            self._readers.append(await self._open_reader())
        if self._others is not None:
            self._others.start(self._committed_head[0])

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
        self._committed_head = last
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
        if self._others is not None:
            await asyncio.to_thread(self._others.stop)
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

    # -- writes ------------------------------------------------------------------------------

    async def _unchained(self, fn: Callable[[SQLiteTx], Awaitable[T]]) -> T:
        """A write with no audit event: through the writer all the same, the one connection
        that writes to the file."""
        return await self._write(fn)

    # -- the writer's side of a batch --------------------------------------------------------

    async def _in_thread(self, batch: list[Job]) -> list[Any]:
        """Run ``batch`` on the writer thread: one hop for the whole batch."""
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_batch, batch)

    def _run_batch(self, batch: list[Job]) -> list[Any]:
        if self._conn is None:
            return [StoreClosed("SQLite store is closed")] * len(batch)
        return drive(run_batch(self._session, batch, self._writer.stats))

    async def _apply_creates(self, tx: SQLiteTx, jobs: list[Create]) -> list[Any]:
        conn = tx.conn
        plan = plan_creates(jobs, self._existing_by_key(conn, {k for j in jobs if (k := j.key)}))
        if plan.decisions:
            conn.executemany(_INSERT_DECISION, plan.decisions)
        await tx.append(plan.drafts)
        if plan.tasks:
            conn.executemany(_INSERT_TASK, plan.tasks)
        if plan.callbacks:
            conn.executemany(INSERT_CALLBACK, plan.callbacks)
        counts, outputs = monitor.created_rows((d for d, new in plan.outcomes if new), tx.now)
        conn.executemany(UPSERT_COUNT, counts)
        if outputs:
            conn.executemany(UPSERT_OUTPUT, outputs)
        return plan.outcomes

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

    # -- reads -------------------------------------------------------------------------------

    async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]:
        self._check_running()
        reader = self._readers[next(self._reader_turn) % len(self._readers)]
        try:
            return list(await reader.execute_fetchall(sql, params))
        except Exception as exc:
            failures.check_read(exc)
            raise

    async def _rows(self, statement: str, params: Sequence[Any]) -> list[Any]:
        return await self._fetchall(statement, params)

    def subscribe_changes(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(decision_id)`` for each change another process on the same file
        committed (only when ``shared``: one process alone publishes its own changes)."""
        self._change_callbacks.append(callback)

    def _changed_elsewhere(self, decision_id: str) -> None:
        for callback in self._change_callbacks:
            callback(decision_id)

    def subscribe_resync(self, callback: Callable[[], None]) -> None:
        """Nothing is ever missed: no change feed to lose."""

    def readiness_checks(self) -> dict[str, bool]:
        return {}

    async def open_audit(self, public_key: Ed25519PublicKey) -> AuditSide:
        log = SQLiteAuditLog(self.path, public_key)
        latest = await asyncio.to_thread(log.file.latest_checkpoint)
        # A kept connection: signing must not need a file handle a flood may have taken.
        writer = await asyncio.to_thread(CheckpointWriter, self.path)
        return AuditSide(log, latest, writer.save, writer.close, writer.tree_root_hex)


class _Session:
    """`gateway.store.writer.Session` on the writer thread's connection. Nothing here
    suspends, so the writer thread drives a whole batch with `gateway.store.writer.drive`."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._began = 0
        self._mine: tuple[int, int] | None = None

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = self._store._conn
        assert conn is not None
        return conn

    async def begin(self) -> SQLiteTx:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        head = _read_head(conn)
        self._began = head[0]
        return SQLiteTx(conn, format_ts(datetime.now(UTC)), head)

    async def apply_creates(self, tx: SQLiteTx, jobs: list[Create]) -> list[Any]:
        return await self._store._apply_creates(tx, jobs)

    async def call(self, tx: SQLiteTx, fn: Callable[[Any], Any]) -> Any:
        return await fn(tx)

    async def savepoint(self, tx: SQLiteTx) -> None:
        tx.conn.execute("SAVEPOINT job")

    async def release(self, tx: SQLiteTx) -> None:
        tx.conn.execute("RELEASE job")

    async def rollback_to(self, tx: SQLiteTx) -> None:
        tx.conn.execute("ROLLBACK TO job")
        tx.conn.execute("RELEASE job")

    async def before_commit(self, tx: SQLiteTx) -> None:
        """Nothing to announce (other processes poll the file); the seqs about to commit are
        this process's own, so its poller does not announce them back to it."""
        self._mine = (self._began, tx.head[0])
        self._store._own.add(*self._mine)

    async def commit(self, tx: SQLiteTx) -> None:
        tx.conn.execute("COMMIT")

    async def rollback(self, tx: SQLiteTx | None) -> None:
        if self._mine is not None:
            self._store._own.discard(*self._mine)
            self._mine = None
        conn = self._store._conn
        if conn is not None and conn.in_transaction:
            # SQLite may have rolled back already (e.g. after SQLITE_FULL)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def committed(self, head: tuple[int, str]) -> None:
        self._mine = None
        self._store._committed(head)


def _read_head(conn: sqlite3.Connection) -> tuple[int, str]:
    """The chain head as stored. Read inside each write transaction (which holds SQLite's write
    lock), so another process appending to the same file, such as the CLI recording a key
    change, never makes this writer fork the chain. One seek to the last row per batch."""
    last = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if last is None else (last[0], last[1])
