"""The audit trail of an SQLite database file, for auditors: queries, export, verification,
signed checkpoints and payload erasure.

Everything here works on a file path, so the same code serves the live gateway (WAL lets it
read while the writer writes) and the offline CLI on a copied file. Reads open their own
read-only connection per call: auditor traffic is light, and a connection costs well under a
millisecond, far less than keeping state consistent across threads.

Checkpoint inserts and erasure write through their own short transactions instead of the
store's writer queue: neither touches the chain head the writer keeps in memory (checkpoints
live in their own table; erasure only sets payloads to NULL, which the chain does not cover),
and both are rare and off the decision path.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import checkpoints as cpmod
from gateway.audit.checkpoints import Checkpoint
from gateway.audit.query import ChainReport, EventFilter
from gateway.policy.versions import PolicyVersion
from gateway.store import codec, merkle
from gateway.store.policies import SELECT_POLICY_VERSION, policy_version
from gateway.store.sqlite.evidence import SQLiteEvidenceLog
from gateway.store.sqlite.verify import connect_read_only, verify_file
from gateway.timefmt import format_ts
from gateway.types import AuditEvent

BATCH = 2000
_EVENT_COLS = ", ".join(f"e.{c}" for c in codec.EVENT_COLUMNS)
_CP_COLS = "seq, hash, signed_at, key_id, signature, signed"
_BUSY_TIMEOUT_MS = 10_000
# SQL below is assembled only from constant column lists; every value is a bound parameter.
_SELECT_EVENTS = f"SELECT {_EVENT_COLS} FROM audit_events e"  # noqa: S608
_SELECT_CPS = f"SELECT {_CP_COLS} FROM audit_checkpoints"  # noqa: S608
_INSERT_CP = (
    f"INSERT INTO audit_checkpoints ({_CP_COLS}) VALUES (?, ?, ?, ?, ?, ?) "  # noqa: S608
    "ON CONFLICT (seq) DO NOTHING"
)


def _where(flt: EventFilter, after_seq: int | None) -> tuple[str, list[Any]]:
    """FROM/WHERE/ORDER BY for ``flt`` (values bound, never spliced)."""
    clauses: list[str] = []
    params: list[Any] = []
    join = bool(flt.application or flt.tier or flt.subject_ref or flt.outcome)
    for column, value in (
        ("e.decision_id", flt.decision_id),
        ("e.actor", flt.actor),
        ("e.type", flt.type),
        ("d.application", flt.application),
        ("d.tier", flt.tier),
        ("d.subject_ref", flt.subject_ref),
        ("d.status", flt.outcome),
    ):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if flt.since is not None:
        clauses.append("e.ts >= ?")
        params.append(format_ts(flt.since))
    if flt.until is not None:
        clauses.append("e.ts < ?")
        params.append(format_ts(flt.until))
    if after_seq is not None:
        clauses.append("e.seq < ?" if flt.newest_first else "e.seq > ?")
        params.append(after_seq)
    sql = "FROM audit_events e"
    if join:
        sql += " JOIN decisions d ON d.id = e.decision_id"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY e.seq " + ("DESC" if flt.newest_first else "ASC")
    return sql, params


class AuditFile:
    """Synchronous access to the audit trail in one database file (offline CLI, benchmarks)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        return connect_read_only(self.path)

    def query(self, flt: EventFilter, after_seq: int | None, limit: int) -> list[AuditEvent]:
        where, params = _where(flt, after_seq)
        with closing(self._connect()) as conn:
            rows = conn.execute(f"SELECT {_EVENT_COLS} {where} LIMIT ?", [*params, limit])
            return [codec.event_from_row(r) for r in rows]

    def iter_query(self, flt: EventFilter) -> Iterator[AuditEvent]:
        """Every matching event, fetched a page at a time."""
        after: int | None = None
        while True:
            page = self.query(flt, after, BATCH)
            yield from page
            if len(page) < BATCH:
                return
            after = page[-1].seq

    def trail(self, decision_id: str) -> list[AuditEvent]:
        with closing(self._connect()) as conn:
            rows = conn.execute(
                _SELECT_EVENTS + " WHERE e.decision_id = ? ORDER BY e.seq",
                (decision_id,),
            )
            return [codec.event_from_row(r) for r in rows]

    def policy_version(self, digest: str) -> PolicyVersion | None:
        """The stored policy version ``digest``; None also in a file migrated before versions
        were kept."""
        with closing(self._connect()) as conn:
            known = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'policy_versions'"
            ).fetchone()
            if known is None:
                return None
            row = conn.execute(SELECT_POLICY_VERSION, (digest,)).fetchone()
        return None if row is None else policy_version(row)

    def iter_rows(self, first: int = 1, last: int | None = None) -> Iterator[tuple[Any, ...]]:
        """Raw rows ``first..last`` in seq order, ``BATCH`` at a time."""
        conn = self._connect()
        try:
            after = first - 1
            while True:
                rows = _rows_after(conn, after, last, BATCH)
                if not rows:
                    return
                yield from rows
                after = rows[-1][0]
        finally:
            conn.close()

    def page(self, after: int, last: int | None, limit: int) -> list[AuditEvent]:
        """Up to ``limit`` events with ``after < seq <= last`` in seq order."""
        with closing(self._connect()) as conn:
            return [codec.event_from_row(r) for r in _rows_after(conn, after, last, limit)]

    def export(self, first: int = 1, last: int | None = None) -> Iterator[AuditEvent]:
        for row in self.iter_rows(first, last):
            yield codec.event_from_row(row)

    def checkpoints(self, first: int = 1, last: int | None = None) -> list[Checkpoint]:
        end = last if last is not None else -1
        with closing(self._connect()) as conn:
            if not _has_checkpoints(conn):
                return []
            rows = conn.execute(
                _SELECT_CPS + " WHERE seq >= ? AND (? < 0 OR seq <= ?) ORDER BY seq",
                (first, end, end),
            ).fetchall()
        return [_checkpoint(r) for r in rows]

    def latest_checkpoint(self) -> Checkpoint | None:
        with closing(self._connect()) as conn:
            if not _has_checkpoints(conn):
                return None
            row = conn.execute(_SELECT_CPS + " ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else _checkpoint(row)

    def verify(
        self,
        first: int = 1,
        last: int | None = None,
        public_key: Ed25519PublicKey | None = None,
        extra: tuple[Checkpoint, ...] = (),
    ) -> ChainReport:
        """Verify events ``first..last``, and every checkpoint in that range when a key is given.

        ``extra`` are checkpoints held outside the file (say, one an auditor saved earlier):
        they catch a cut tail even when the checkpoints in the file were removed with it.

        Raises:
            CheckpointError: A checkpoint's signature does not verify with ``public_key``.
        """
        signed: dict[int, str] = {}
        if public_key is not None:
            cps = [*self.checkpoints(first, last), *extra]
            signed = cpmod.check_all(cps, public_key)
            if last is not None:
                signed = {s: h for s, h in signed.items() if s <= last}
        result = verify_file(self.path, first, last, signed)
        return ChainReport(result, len(signed))


class FileTrailReader:
    """`gateway.store.trail.TrailReader` on a database file."""

    def __init__(self, path: Path) -> None:
        self.file = AuditFile(path)

    def query(self, flt: EventFilter, limit: int) -> Iterator[AuditEvent]:
        flt.validate()
        for i, ev in enumerate(self.file.iter_query(flt)):
            if limit and i >= limit:
                return
            yield ev

    def trail(self, decision_id: str) -> list[AuditEvent]:
        return self.file.trail(decision_id)

    def policy_version(self, digest: str) -> PolicyVersion | None:
        return self.file.policy_version(digest)

    def export(self, first: int, last: int | None) -> Iterator[AuditEvent]:
        return self.file.export(first, last)

    def verify(
        self, public_key: Ed25519PublicKey | None, extra: tuple[Checkpoint, ...] = ()
    ) -> ChainReport:
        return self.file.verify(1, None, public_key, extra)

    def latest_checkpoint(self) -> Checkpoint | None:
        return self.file.latest_checkpoint()


def _rows_after(
    conn: sqlite3.Connection, after: int, last: int | None, limit: int
) -> list[tuple[Any, ...]]:
    end = last if last is not None else -1
    return conn.execute(
        _SELECT_EVENTS + " WHERE e.seq > ? AND (? < 0 OR e.seq <= ?) ORDER BY e.seq LIMIT ?",
        (after, end, end, limit),
    ).fetchall()


def _has_checkpoints(conn: sqlite3.Connection) -> bool:
    # A file from before migration 3 has no checkpoint table; it still verifies as a chain.
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_checkpoints'"
    ).fetchone()
    return row is not None


def _checkpoint(row: tuple[Any, ...]) -> Checkpoint:
    seq, hash_, signed_at, key, signature, signed = row
    return Checkpoint(seq, hash_, signed_at, key, bytes(signature), bytes(signed))


def _connect_rw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    return conn


def insert_checkpoint(path: str | Path, cp: Checkpoint) -> None:
    """Store a checkpoint (a repeat of a stored seq is ignored)."""
    conn = _connect_rw(Path(path))
    try:
        conn.execute(
            _INSERT_CP,
            (cp.seq, cp.hash, cp.signed_at, cp.key_id, cp.signature, cp.signed),
        )
    finally:
        conn.close()


class CheckpointWriter:
    """Stores the live gateway's checkpoints through one connection, kept from start to `close`.

    A connection per checkpoint needs a free file handle at each signing: once a flood of
    connections had taken every handle of the process, each checkpoint failed with "unable to
    open database file". A kept connection (its WAL and shared-memory files opened at start)
    needs no new handle.
    """

    def __init__(self, path: str | Path) -> None:
        conn = sqlite3.connect(Path(path), isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            conn.execute("SELECT count(*) FROM audit_checkpoints").fetchone()  # opens the WAL
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()  # each call may run on another of asyncio's threads

    def _insert(self, cp: Checkpoint) -> None:
        with self._lock:
            if self._conn is None:
                raise sqlite3.ProgrammingError("checkpoint writer is closed")
            self._conn.execute(
                _INSERT_CP, (cp.seq, cp.hash, cp.signed_at, cp.key_id, cp.signature, cp.signed)
            )

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def save(self, cp: Checkpoint) -> None:
        """Store a checkpoint (a repeat of a stored seq is ignored)."""
        await asyncio.to_thread(self._insert, cp)

    def _tree_root(self, size: int) -> bytes:
        with self._lock:
            if self._conn is None:
                raise sqlite3.ProgrammingError("checkpoint writer is closed")
            return merkle.drive(merkle.tree_root(merkle.SQLiteNodes(self._conn), size))

    async def tree_root_hex(self, size: int) -> str:
        """The Merkle root of the first ``size`` events, read through the kept connection (a
        checkpoint must be signed even when every file handle is taken)."""
        return (await asyncio.to_thread(self._tree_root, size)).hex()

    async def close(self) -> None:
        await asyncio.to_thread(self._close)


def erase_payloads(
    path: str | Path, *, before: datetime | None = None, subject_ref: str = ""
) -> int:
    """Set the payload of matching events to NULL; returns how many were erased.

    Matches events older than ``before`` and/or of decisions about ``subject_ref`` (at least
    one is required). Runs in batches of short transactions so the live writer is never held
    up for long. The chain still verifies: it covers only each payload's digest.
    """
    if before is None and not subject_ref:
        raise ValueError("erase needs --before or --subject (refusing to erase everything)")
    clauses, params = ["payload IS NOT NULL"], []
    if before is not None:
        clauses.append("ts < ?")
        params.append(format_ts(before))
    if subject_ref:
        clauses.append("decision_id IN (SELECT id FROM decisions WHERE subject_ref = ?)")
        params.append(subject_ref)
    where = " AND ".join(clauses)
    conn = _connect_rw(Path(path))
    total = 0
    try:
        while True:
            cur = conn.execute(
                f"UPDATE audit_events SET payload = NULL WHERE seq IN "  # noqa: S608
                f"(SELECT seq FROM audit_events WHERE {where} LIMIT ?)",
                [*params, BATCH],
            )
            total += cur.rowcount
            if cur.rowcount < BATCH:
                return total
    finally:
        conn.close()


class SQLiteAuditLog(SQLiteEvidenceLog):
    """`gateway.audit.query.AuditLog` over a database file, running each read in a thread
    (proofs and evidence reads from `SQLiteEvidenceLog`)."""

    def __init__(self, path: str | Path, public_key: Ed25519PublicKey | None = None) -> None:
        super().__init__(path)
        self.file = AuditFile(path)
        self._public_key = public_key

    async def query(self, flt: EventFilter, after_seq: int | None, limit: int) -> list[AuditEvent]:
        return await asyncio.to_thread(self.file.query, flt, after_seq, limit)

    async def trail(self, decision_id: str) -> list[AuditEvent]:
        return await asyncio.to_thread(self.file.trail, decision_id)

    async def export(self, first: int, last: int | None) -> AsyncIterator[AuditEvent]:
        after = first - 1
        while True:
            page = await asyncio.to_thread(self.file.page, after, last, BATCH)
            for ev in page:
                yield ev
            if len(page) < BATCH:
                return
            after = page[-1].seq

    async def verify(self, first: int, last: int | None) -> ChainReport:
        return await asyncio.to_thread(self.file.verify, first, last, self._public_key)

    async def latest_checkpoint(self) -> Checkpoint | None:
        return await asyncio.to_thread(self.file.latest_checkpoint)

    async def policy_version(self, digest: str) -> PolicyVersion | None:
        return await asyncio.to_thread(self.file.policy_version, digest)
