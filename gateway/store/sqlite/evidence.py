"""Proofs, evidence and time-stamp tokens from an SQLite database file.

Like `gateway.store.sqlite.audit`, everything works on a path, so the live gateway and the
offline CLI on a copied file share it; reads open a read-only connection per call. The Merkle
reads (`gateway.store.merkle`) never suspend, so they are driven here on the calling thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from gateway.audit.checkpoints import Checkpoint
from gateway.audit.timestamps import TimeStamp
from gateway.store import codec, merkle
from gateway.store.models import MODEL_COLUMNS, SELECT_MODELS
from gateway.store.reads import decision as decision_of
from gateway.store.sqlite.verify import connect_read_only
from gateway.types import Decision

_TS_COLS = "seq, token, tsa_url, stamped_at"
_SELECT_CPS = "SELECT seq, hash, signed_at, key_id, signature, signed FROM audit_checkpoints"
_BUSY_TIMEOUT_MS = 10_000


def _checkpoint(row: tuple[Any, ...]) -> Checkpoint:
    seq, hash_, signed_at, key, signature, signed = row
    return Checkpoint(seq, hash_, signed_at, key, bytes(signature), bytes(signed))


def _connect_rw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    return conn


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


class FileEvidence:
    """Synchronous proof and evidence reads on one database file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        return connect_read_only(self.path)

    def checkpoint_at(self, seq: int) -> Checkpoint | None:
        with closing(self._connect()) as conn:
            if not _has_table(conn, "audit_checkpoints"):
                return None
            row = conn.execute(_SELECT_CPS + " WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else _checkpoint(row)

    def leaf_hash(self, index: int) -> bytes:
        with closing(self._connect()) as conn:
            return merkle.drive(merkle.leaf(merkle.SQLiteNodes(conn), index))

    def inclusion_path(self, index: int, size: int) -> list[bytes]:
        with closing(self._connect()) as conn:
            src = merkle.SQLiteNodes(conn)
            return merkle.drive(merkle.inclusion_proof(src, index, size))

    def inclusion(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """`leaf_hash` and `inclusion_path` through one connection (opening one costs more
        than the proof: SQLite reads the schema first)."""
        with closing(self._connect()) as conn:
            src = merkle.SQLiteNodes(conn)
            leaf = merkle.drive(merkle.leaf(src, index))
            return leaf, merkle.drive(merkle.inclusion_proof(src, index, size))

    def consistency_path(self, old: int, new: int) -> list[bytes]:
        with closing(self._connect()) as conn:
            src = merkle.SQLiteNodes(conn)
            return merkle.drive(merkle.consistency_proof(src, old, new))

    def tree_root(self, size: int) -> bytes:
        with closing(self._connect()) as conn:
            return merkle.drive(merkle.tree_root(merkle.SQLiteNodes(conn), size))

    def decision(self, decision_id: str) -> Decision | None:
        with closing(self._connect()) as conn:
            row = conn.execute(f"{codec.SELECT_DECISION} WHERE d.id = ?", (decision_id,)).fetchone()
        return None if row is None else decision_of(row)

    def model_record(self, backend: str, name: str, version: str) -> dict[str, Any] | None:
        with closing(self._connect()) as conn:
            if not _has_table(conn, "models"):
                return None
            row = conn.execute(
                f"{SELECT_MODELS} WHERE backend = ? AND name = ? AND version = ?",
                (backend, name, version),
            ).fetchone()
        return None if row is None else dict(zip(MODEL_COLUMNS, row, strict=True))

    def timestamp(self, seq: int) -> TimeStamp | None:
        with closing(self._connect()) as conn:
            if not _has_table(conn, "audit_timestamps"):
                return None
            row = conn.execute(
                f"SELECT {_TS_COLS} FROM audit_timestamps WHERE seq = ?",  # noqa: S608
                (seq,),
            ).fetchone()
        return None if row is None else TimeStamp(row[0], bytes(row[1]), row[2], row[3])

    def unstamped(self, limit: int) -> list[Checkpoint]:
        """Checkpoints without a token, oldest first."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                _SELECT_CPS + " c WHERE NOT EXISTS "  # noqa: S608 (constants only)
                "(SELECT 1 FROM audit_timestamps t WHERE t.seq = c.seq) ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [_checkpoint(r) for r in rows]

    def save_timestamp(self, stamp: TimeStamp) -> None:
        with closing(_connect_rw(self.path)) as conn:
            conn.execute(
                f"INSERT INTO audit_timestamps ({_TS_COLS}) VALUES (?, ?, ?, ?) "  # noqa: S608
                "ON CONFLICT (seq) DO NOTHING",
                (stamp.seq, stamp.token, stamp.tsa_url, stamp.stamped_at),
            )


class SQLiteEvidenceLog:
    """`FileEvidence` as coroutines, each read in a thread (the live gateway's event loop must
    not wait on the disk)."""

    def __init__(self, path: str | Path) -> None:
        self.evidence = FileEvidence(path)

    async def checkpoint_at(self, seq: int) -> Checkpoint | None:
        return await asyncio.to_thread(self.evidence.checkpoint_at, seq)

    async def leaf_hash(self, index: int) -> bytes:
        return await asyncio.to_thread(self.evidence.leaf_hash, index)

    async def inclusion_path(self, index: int, size: int) -> list[bytes]:
        return await asyncio.to_thread(self.evidence.inclusion_path, index, size)

    async def consistency_path(self, old: int, new: int) -> list[bytes]:
        return await asyncio.to_thread(self.evidence.consistency_path, old, new)

    async def tree_root(self, size: int) -> bytes:
        return await asyncio.to_thread(self.evidence.tree_root, size)

    async def tree_root_hex(self, size: int) -> str:
        return (await self.tree_root(size)).hex()

    async def decision(self, decision_id: str) -> Decision | None:
        return await asyncio.to_thread(self.evidence.decision, decision_id)

    async def model_record(self, backend: str, name: str, version: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.evidence.model_record, backend, name, version)

    async def timestamp(self, seq: int) -> TimeStamp | None:
        return await asyncio.to_thread(self.evidence.timestamp, seq)

    async def unstamped(self, limit: int) -> list[Checkpoint]:
        return await asyncio.to_thread(self.evidence.unstamped, limit)

    async def save_timestamp(self, stamp: TimeStamp) -> None:
        await asyncio.to_thread(self.evidence.save_timestamp, stamp)
