"""Proofs, evidence and time-stamp tokens from a PostgreSQL store (live pool, or the offline
CLI's read-only snapshot connection): the reads of `gateway.store.sqlite.evidence`."""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg

from gateway.audit.checkpoints import Checkpoint
from gateway.audit.timestamps import TimeStamp
from gateway.policy.versions import PolicyVersion
from gateway.store import merkle, sql
from gateway.store.models import MODEL_COLUMNS, SELECT_MODELS
from gateway.store.policies import SELECT_POLICY_VERSION, policy_version
from gateway.store.postgres.sql import SELECT_DECISION
from gateway.store.reads import decision as decision_of
from gateway.store.writer import StoreClosed
from gateway.types import Decision

_CP_COLS = "seq, hash, signed_at, key_id, signature, signed"
_TS_COLS = "seq, token, tsa_url, stamped_at"


class _Database(Protocol):
    @property
    def dsn(self) -> str: ...

    @property
    def pool(self) -> Any: ...


def _checkpoint(row: Any) -> Checkpoint:
    seq, hash_, signed_at, key, signature, signed = row
    return Checkpoint(seq, hash_, signed_at, key, bytes(signature), bytes(signed))


class PostgresEvidenceLog:
    """Proof and evidence reads through ``self._store.pool`` (see `PostgresAuditLog`)."""

    _store: _Database

    def _nodes(self) -> merkle.PostgresNodes:
        return merkle.PostgresNodes(self._store.pool)

    async def checkpoint_at(self, seq: int) -> Checkpoint | None:
        row = await self._store.pool.fetchrow(
            f"SELECT {_CP_COLS} FROM audit_checkpoints WHERE seq = $1",  # noqa: S608
            seq,
        )
        return None if row is None else _checkpoint(row)

    async def leaf_hash(self, index: int) -> bytes:
        return await merkle.leaf(self._nodes(), index)

    async def inclusion_path(self, index: int, size: int) -> list[bytes]:
        return await merkle.inclusion_proof(self._nodes(), index, size)

    async def consistency_path(self, old: int, new: int) -> list[bytes]:
        return await merkle.consistency_proof(self._nodes(), old, new)

    async def tree_root(self, size: int) -> bytes:
        return await merkle.tree_root(self._nodes(), size)

    async def tree_root_hex(self, size: int) -> str:
        """`tree_root` in hex, for the checkpointer: its last checkpoint is signed after the
        store's pool closed, so that one reads through a connection of its own."""
        try:
            pool = self._store.pool
        except StoreClosed:
            conn = await asyncpg.connect(self._store.dsn)
            try:
                return (await merkle.tree_root(merkle.PostgresNodes(conn), size)).hex()
            finally:
                await conn.close()
        return (await merkle.tree_root(merkle.PostgresNodes(pool), size)).hex()

    async def decision(self, decision_id: str) -> Decision | None:
        row = await self._store.pool.fetchrow(f"{SELECT_DECISION} WHERE d.id = $1", decision_id)
        return None if row is None else decision_of(row)

    async def model_record(self, backend: str, name: str, version: str) -> dict[str, Any] | None:
        if await self._store.pool.fetchval("SELECT to_regclass('models')") is None:
            return None
        row = await self._store.pool.fetchrow(
            f"{SELECT_MODELS} WHERE backend = $1 AND name = $2 AND version = $3",
            backend,
            name,
            version,
        )
        return None if row is None else dict(zip(MODEL_COLUMNS, tuple(row), strict=True))

    async def policy_version(self, digest: str) -> PolicyVersion | None:
        if await self._store.pool.fetchval("SELECT to_regclass('policy_versions')") is None:
            return None
        row = await self._store.pool.fetchrow(sql.numbered(SELECT_POLICY_VERSION), digest)
        return None if row is None else policy_version(tuple(row))

    async def timestamp(self, seq: int) -> TimeStamp | None:
        if await self._store.pool.fetchval("SELECT to_regclass('audit_timestamps')") is None:
            return None
        row = await self._store.pool.fetchrow(
            f"SELECT {_TS_COLS} FROM audit_timestamps WHERE seq = $1",  # noqa: S608
            seq,
        )
        return None if row is None else TimeStamp(row[0], bytes(row[1]), row[2], row[3])

    async def unstamped(self, limit: int) -> list[Checkpoint]:
        rows = await self._store.pool.fetch(
            f"SELECT {_CP_COLS} FROM audit_checkpoints c WHERE NOT EXISTS "  # noqa: S608
            "(SELECT 1 FROM audit_timestamps t WHERE t.seq = c.seq) ORDER BY seq LIMIT $1",
            limit,
        )
        return [_checkpoint(r) for r in rows]

    async def save_timestamp(self, stamp: TimeStamp) -> None:
        await self._store.pool.execute(
            f"INSERT INTO audit_timestamps ({_TS_COLS}) VALUES ($1, $2, $3, $4) "  # noqa: S608
            "ON CONFLICT (seq) DO NOTHING",
            stamp.seq,
            stamp.token,
            stamp.tsa_url,
            stamp.stamped_at,
        )
