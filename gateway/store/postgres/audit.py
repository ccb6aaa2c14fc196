"""The audit trail in a PostgreSQL store, for auditors: queries, export, verification and
signed checkpoints.

The same filters as the SQLite file reader (`gateway.store.sqlite.audit`), over the live pool.
Verification walks the chain a page at a time with `gateway.audit.verifier.verify_rows`, each
page continuing from the previous page's head, so memory stays bounded however long the chain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import checkpoints as cpmod
from gateway.audit.chain import GENESIS, VerifyResult
from gateway.audit.checkpoints import Checkpoint
from gateway.audit.query import ChainReport, EventFilter
from gateway.audit.verifier import verify_rows
from gateway.store import codec
from gateway.store.postgres.evidence import PostgresEvidenceLog
from gateway.store.sql import numbered
from gateway.store.sqlite.audit import BATCH
from gateway.store.sqlite.audit import _where as sqlite_where
from gateway.store.writer import StoreClosed
from gateway.types import AuditEvent

_EVENT_COLS = ", ".join(f"e.{c}" for c in codec.EVENT_COLUMNS)
_CP_COLS = "seq, hash, signed_at, key_id, signature, signed"


def _checkpoint(row: Any) -> Checkpoint:
    seq, hash_, signed_at, key, signature, signed = row
    return Checkpoint(seq, hash_, signed_at, key, bytes(signature), bytes(signed))


class TrailDatabase(Protocol):
    """What `PostgresAuditLog` reads through: a running `PostgresStore`, or one read-only
    connection of an auditor's (`gateway.store.postgres.offline.ReadOnlyTrail`)."""

    @property
    def dsn(self) -> str: ...

    @property
    def pool(self) -> Any:
        """An asyncpg pool or connection (both have ``fetch``, ``fetchrow``, ``fetchval``)."""

    async def audit_events_for(self, decision_id: str) -> list[AuditEvent]: ...


class PostgresAuditLog(PostgresEvidenceLog):
    """`gateway.audit.query.AuditLog` over a running `PostgresStore` (or a `TrailDatabase`),
    with the proof and evidence reads of `PostgresEvidenceLog`."""

    _store: TrailDatabase

    def __init__(self, store: TrailDatabase, public_key: Ed25519PublicKey | None = None) -> None:
        self._store = store
        self._public_key = public_key

    async def query(self, flt: EventFilter, after_seq: int | None, limit: int) -> list[AuditEvent]:
        where, params = sqlite_where(flt, after_seq)
        sql = numbered(f"SELECT {_EVENT_COLS} {where} LIMIT ?")
        rows = await self._store.pool.fetch(sql, *params, limit)
        return [codec.event_from_row(tuple(r)) for r in rows]

    async def trail(self, decision_id: str) -> list[AuditEvent]:
        return await self._store.audit_events_for(decision_id)

    async def _page(self, after: int, last: int | None, limit: int) -> list[tuple[Any, ...]]:
        rows = await self._store.pool.fetch(
            f"SELECT {_EVENT_COLS} FROM audit_events e "  # noqa: S608 (constants only)
            "WHERE e.seq > $1 AND ($2::bigint IS NULL OR e.seq <= $2::bigint) "
            "ORDER BY e.seq LIMIT $3",
            after,
            last,
            limit,
        )
        return [tuple(r) for r in rows]

    async def export(self, first: int, last: int | None) -> AsyncIterator[AuditEvent]:
        after = first - 1
        while True:
            page = await self._page(after, last, BATCH)
            for row in page:
                yield codec.event_from_row(row)
            if len(page) < BATCH:
                return
            after = page[-1][0]

    async def checkpoints(self, first: int = 1, last: int | None = None) -> list[Checkpoint]:
        rows = await self._store.pool.fetch(
            f"SELECT {_CP_COLS} FROM audit_checkpoints "  # noqa: S608 (constants only)
            "WHERE seq >= $1 AND ($2::bigint IS NULL OR seq <= $2::bigint) ORDER BY seq",
            first,
            last,
        )
        return [_checkpoint(r) for r in rows]

    async def latest_checkpoint(self) -> Checkpoint | None:
        row = await self._store.pool.fetchrow(
            f"SELECT {_CP_COLS} FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"  # noqa: S608
        )
        return None if row is None else _checkpoint(row)

    async def insert_checkpoint(self, cp: Checkpoint) -> None:
        """Store a checkpoint (a repeat of a stored seq, say from another replica, is ignored).

        The last checkpoint is signed after the store's final flush, when its pool is closed;
        that one goes through a connection of its own.
        """
        try:
            conn: asyncpg.Pool | asyncpg.Connection = self._store.pool
        except StoreClosed:
            conn = await asyncpg.connect(self._store.dsn)
        try:
            await self._insert_checkpoint(conn, cp)
        finally:
            if isinstance(conn, asyncpg.Connection):
                await conn.close()

    @staticmethod
    async def _insert_checkpoint(conn: asyncpg.Pool | asyncpg.Connection, cp: Checkpoint) -> None:
        await conn.execute(
            f"INSERT INTO audit_checkpoints ({_CP_COLS}) "  # noqa: S608 (constants only)
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (seq) DO NOTHING",
            cp.seq,
            cp.hash,
            cp.signed_at,
            cp.key_id,
            cp.signature,
            cp.signed,
        )

    async def verify(
        self, first: int, last: int | None, extra: tuple[Checkpoint, ...] = ()
    ) -> ChainReport:
        """Verify events ``first..last``, and every stored checkpoint in range when keyed.

        ``extra`` are checkpoints held outside the database (say, one an auditor saved
        earlier): they catch a cut tail even when the stored checkpoints were removed with it.

        Raises:
            CheckpointError: A checkpoint's signature does not verify with the public key.
        """
        signed: dict[int, str] = {}
        if self._public_key is not None:
            held = [*await self.checkpoints(first, last), *extra]
            signed = cpmod.check_all(held, self._public_key)
            if last is not None:
                signed = {s: h for s, h in signed.items() if s <= last}
        prev = GENESIS
        if first > 1:
            found = await self._store.pool.fetchval(
                "SELECT hash FROM audit_events WHERE seq = $1", first - 1
            )
            prev = GENESIS if found is None else str(found)
        checked, seq = 0, first
        while True:
            page = await self._page(seq - 1, last, BATCH)
            final = len(page) < BATCH
            # Checkpoints past this page are checked by a later page, or, on the last page,
            # reported as a cut-off tail.
            cps = signed if final else {s: h for s, h in signed.items() if s <= page[-1][0]}
            result = verify_rows(page, start_prev_hash=prev, start_seq=seq, checkpoints=cps)
            checked += result.checked
            if not result.ok or final:
                outcome = VerifyResult(
                    result.ok,
                    checked,
                    result.first_bad_seq,
                    result.reason,
                    result.head_seq,
                    result.head_hash,
                )
                return ChainReport(outcome, len(signed))
            prev, seq = result.head_hash, result.head_seq + 1
