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
in-process notifier). A lost connection is re-established (`gateway.store.postgres.listen`),
and then the callbacks given to `subscribe_resync` are told that announcements may have been
missed.
Decisions made automatically are not announced: nobody can be waiting on them, and they are
most of the traffic. Kill switch changes are announced on a channel of their own
(`SWITCH_CHANNEL`, listened to on the same connection) to the callbacks given to
`subscribe_switches`; those only hasten a re-read, since `gateway.core.switches` re-reads the
state on a timer whether or not the feed is up. Model inventory changes likewise
(`MODEL_CHANNEL`, `subscribe_models`).

Claims do not go through the writer: they write no audit event, and row locks with
``FOR UPDATE SKIP LOCKED`` keep two reviewers (on any replicas) from taking one item.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import structlog
from asyncpg.transaction import Transaction
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.chain import GENESIS
from gateway.modelrisk import monitor
from gateway.store import failures, sql
from gateway.store.accounts import AccountsMixin
from gateway.store.base import StoreBase
from gateway.store.callbacks import INSERT_CALLBACK
from gateway.store.erasure import ErasureMixin
from gateway.store.models import ModelsMixin
from gateway.store.monitoring import UPSERT_COUNT, UPSERT_OUTPUT, MonitoringMixin
from gateway.store.policies import PoliciesMixin
from gateway.store.postgres.audit import PostgresAuditLog
from gateway.store.postgres.listen import Backoff, ChangeListener
from gateway.store.postgres.migrations import apply_pg_migrations
from gateway.store.postgres.sla import PostgresSlaMixin
from gateway.store.postgres.sql import (
    INSERT_DECISION,
    INSERT_TASK,
    SELECT_DECISION,
)
from gateway.store.protocol import AuditSide
from gateway.store.qa import QAMixin
from gateway.store.reads import decision
from gateway.store.reviews import ReviewsMixin
from gateway.store.sessions import SessionsMixin
from gateway.store.shadow import ShadowMixin
from gateway.store.sla import SlaMixin
from gateway.store.switches import SwitchesMixin
from gateway.store.tx import PostgresTx
from gateway.store.writer import (
    Create,
    GroupWriter,
    Job,
    StoreClosed,
    plan_creates,
    run_batch,
)
from gateway.timefmt import format_ts
from gateway.types import (
    Decision,
)

T = TypeVar("T")
log = structlog.get_logger("gateway.store.postgres.store")

CHAIN_LOCK = 0x6869_746C_6368_6169
"""Advisory lock key every audit-chain append holds until its commit ("hitlchai")."""
CHANNEL = "hitl_changes"
"""NOTIFY channel; the payload is ``<origin> <decision id>``."""
SWITCH_CHANNEL = "hitl_switches"
"""NOTIFY channel of kill switch changes; the payload is ``<kind> <name>``. A channel of its
own, so replicas of an older version (listening on `CHANNEL` only) never mistake it for a
decision id."""
MODEL_CHANNEL = "hitl_models"
"""NOTIFY channel of model inventory changes; the payload is the key, ``backend/name@version``."""
POLICY_CHANNEL = "hitl_policies"
"""NOTIFY channel of changes of the enforced or shadow policy version; the payload is a digest."""

ChangeCallback = Callable[[str], None]

_SELECT_HEAD = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
_numbered = functools.lru_cache(maxsize=256)(sql.numbered)
_UPSERT_COUNT = sql.numbered(UPSERT_COUNT)
_UPSERT_OUTPUT = sql.numbered(UPSERT_OUTPUT)
_INSERT_CALLBACK = sql.numbered(INSERT_CALLBACK)
"""`sql.numbered` of the shared reads (a few fixed statements), converted once each."""


class PostgresStore(
    StoreBase,
    ReviewsMixin,
    PostgresSlaMixin,
    SlaMixin,
    QAMixin,
    AccountsMixin,
    SwitchesMixin,
    PoliciesMixin,
    ShadowMixin,
    ModelsMixin,
    MonitoringMixin,
    ErasureMixin,
    SessionsMixin,
):
    """`gateway.store.protocol.ReviewStore` on a PostgreSQL database.

    Args:
        dsn: ``postgresql://user:password@host:port/database``; other query parameters are
            server settings (say ``?search_path=tenant``).
        max_batch: Most write jobs committed in one transaction.
        pool_size: Most connections for reads, claims and the writer.
        listen_backoff: Waits between attempts to listen again after losing the connection.
    """

    _SELECT_DECISION = SELECT_DECISION
    _DEADLINE_ORDER = "COALESCE(t.deadline, '~')"
    _FIND_TEXT = "strpos"
    _SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    _ANNOUNCE_SWITCH = f"SELECT pg_notify('{SWITCH_CHANNEL}', ?)"
    _ANNOUNCE_MODEL = f"SELECT pg_notify('{MODEL_CHANNEL}', ?)"
    _ANNOUNCE_POLICY = f"SELECT pg_notify('{POLICY_CHANNEL}', ?)"

    def __init__(
        self,
        dsn: str,
        *,
        max_batch: int = 256,
        pool_size: int = 8,
        listen_backoff: Backoff | None = None,
    ) -> None:
        if pool_size < 2:
            raise ValueError("pool_size must be at least 2")
        self.dsn = dsn
        super().__init__(GroupWriter(self._run_batch, max_batch=max_batch, name="PostgreSQL store"))
        self.origin = uuid.uuid4().hex
        """This store's name in NOTIFY payloads, so it skips its own announcements."""
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._listener = ChangeListener(
            dsn,
            CHANNEL,
            self._on_notify,
            self._on_resync,
            listen_backoff,
            more={
                SWITCH_CHANNEL: self._on_switch_notify,
                MODEL_CHANNEL: self._on_model_notify,
                POLICY_CHANNEL: self._policy_changed,
            },
        )
        self._callbacks: list[ChangeCallback] = []
        self._switch_callbacks: list[Callable[[], None]] = []
        self._model_callbacks: list[Callable[[], None]] = []
        self._policy_callbacks: list[Callable[[], None]] = []
        self._resync_callbacks: list[Callable[[], None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def _open(self) -> None:
        """Connect, apply numbered migrations, load the chain head, listen."""
        self._pool = await asyncpg.create_pool(self.dsn, min_size=2, max_size=self._pool_size)
        async with self._pool.acquire() as conn:
            await apply_pg_migrations(conn, format_ts(datetime.now(UTC)))
            row = await conn.fetchrow(
                "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
            )
        if row is not None:
            self._committed_head = (row[0], row[1])
        await self._listener.start()

    async def _close_connections(self) -> None:
        await self._listener.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

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

    def subscribe_switches(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` for each switch change committed (by any replica or process,
        this one included: the follower re-reads, so no payload needs parsing)."""
        self._switch_callbacks.append(callback)

    def subscribe_models(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` for each model inventory change committed (by any process)."""
        self._model_callbacks.append(callback)

    def readiness_checks(self) -> dict[str, bool]:
        """``store:changes``: deaf to other replicas, waiters here would hang."""
        return {"store:changes": self._listener.connected}

    async def open_audit(self, public_key: Ed25519PublicKey) -> AuditSide:
        log = PostgresAuditLog(self, public_key)
        return AuditSide(log, await log.latest_checkpoint(), log.insert_checkpoint)

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

    def _on_switch_notify(self, payload: str) -> None:
        for callback in self._switch_callbacks:
            try:
                callback()
            except Exception:  # one broken subscriber must not silence the others
                log.exception("store.switch_callback_failed", change=payload)

    def _on_model_notify(self, payload: str) -> None:
        for callback in self._model_callbacks:
            try:
                callback()
            except Exception:  # one broken subscriber must not silence the others
                log.exception("store.model_callback_failed", model=payload)

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

    async def _unchained(self, fn: Callable[[PostgresTx], Awaitable[T]]) -> T:
        """A write with no audit event, in a short transaction of its own: it needs neither the
        chain lock nor a place in a batch."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await fn(PostgresTx(conn, format_ts(datetime.now(UTC)), (0, GENESIS)))

    # -- the writer's side of a batch --------------------------------------------------------

    async def _run_batch(self, batch: list[Job]) -> list[Any]:
        """Apply ``batch`` in one transaction on one pooled connection. One outcome per job."""
        if self._pool is None:
            return [StoreClosed("PostgreSQL store is closed")] * len(batch)
        async with self._pool.acquire() as conn:
            return await run_batch(_Session(self, conn), batch, self._writer.stats)

    async def _apply_creates(self, tx: PostgresTx, jobs: list[Create]) -> list[Any]:
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
                d = decision(row)
                existing[(d.application, d.idempotency_key)] = d
        plan = plan_creates(jobs, existing)
        tx.changed.extend(plan.queued)
        if plan.decisions:
            await tx.conn.executemany(INSERT_DECISION, plan.decisions)
        await tx.append(plan.drafts)
        if plan.tasks:
            await tx.conn.executemany(INSERT_TASK, plan.tasks)
        if plan.callbacks:
            await tx.conn.executemany(_INSERT_CALLBACK, plan.callbacks)
        counts, outputs = monitor.created_rows((d for d, new in plan.outcomes if new), tx.now)
        if counts:
            await tx.conn.executemany(_UPSERT_COUNT, counts)
        if outputs:
            await tx.conn.executemany(_UPSERT_OUTPUT, outputs)
        return plan.outcomes

    # -- reads -------------------------------------------------------------------------------

    async def _fetch(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await self.pool.fetch(sql, *params)
        except Exception as exc:
            failures.check_read(exc)
            raise
        return rows

    async def _rows(self, statement: str, params: Sequence[Any]) -> list[asyncpg.Record]:
        return await self._fetch(_numbered(statement), *params)


class _Session:
    """`gateway.store.writer.Session` for one batch on one pooled connection.

    Each transaction first takes the chain's advisory lock and reads the head; changes other
    replicas must see are announced with NOTIFY inside it, so only what commits is announced.
    """

    def __init__(self, store: PostgresStore, conn: asyncpg.Connection) -> None:
        self._store = store
        self._conn = conn
        self._tr: Transaction | None = None
        self._savepoint: Transaction | None = None

    async def begin(self) -> PostgresTx:
        """Take the chain lock and read the head: from here to the commit the chain is ours."""
        conn = self._conn
        self._tr = conn.transaction()
        await self._tr.start()
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK)
        row = await conn.fetchrow(_SELECT_HEAD)
        head = (0, GENESIS) if row is None else (row[0], row[1])
        return PostgresTx(conn, format_ts(datetime.now(UTC)), head)

    async def apply_creates(self, tx: PostgresTx, jobs: list[Create]) -> list[Any]:
        return await self._store._apply_creates(tx, jobs)

    async def call(self, tx: PostgresTx, fn: Callable[[Any], Any]) -> Any:
        return await fn(tx)

    async def savepoint(self, tx: PostgresTx) -> None:
        self._savepoint = tx.conn.transaction()  # nested in the open one: a savepoint
        await self._savepoint.start()

    async def release(self, tx: PostgresTx) -> None:
        assert self._savepoint is not None
        await self._savepoint.commit()

    async def rollback_to(self, tx: PostgresTx) -> None:
        assert self._savepoint is not None
        await self._savepoint.rollback()

    async def before_commit(self, tx: PostgresTx) -> None:
        if tx.changed:
            await tx.conn.execute(
                "SELECT pg_notify($1, $2 || ' ' || id) FROM unnest($3::text[]) AS id",
                CHANNEL,
                self._store.origin,
                sorted(set(tx.changed)),
            )

    async def commit(self, tx: PostgresTx) -> None:
        assert self._tr is not None
        await self._tr.commit()

    async def rollback(self, tx: PostgresTx | None) -> None:
        tr, self._tr = self._tr, None
        # Nothing to do when COMMIT itself failed (the server ended the transaction) or the
        # connection is gone (the pool discards it).
        with contextlib.suppress(Exception):
            if tr is not None:
                await tr.rollback()

    def committed(self, head: tuple[int, str]) -> None:
        self._store._committed(head)
