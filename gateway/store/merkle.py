"""The audit Merkle tree as stored: its schema, its upkeep on the append path, and the reads
that build proofs, on both databases.

Appending: each write transaction that appends events also stores the complete subtrees
(`gateway.audit.merkle.STORED_LEVEL` and up) those events complete. Doing so needs the tree's
frontier at the chain head the transaction starts from. The frontier is remembered in memory
keyed by that head ``(seq, hash)``: the head hash pins every event before it (the chain), so a
remembered frontier is right whatever process or replica wrote the events, and a head another
replica moved is simply not found and read back from the table (one lookup per set bit of the
size). A savepoint rolled back restores the earlier head, whose frontier is still remembered.

Reading: a proof is a list of range hashes; each range is a few complete subtrees, fetched in
one query, and those below `STORED_LEVEL` are hashed from the at most 16 events they cover. A
subtree missing from the table (a database migrated from before the tree existed) is computed
from its halves and, on the append path, stored, so the first append after the upgrade fills
the table once.

The reads are coroutines on both databases; SQLite's never suspend, so the synchronous code
(the writer thread, the offline CLI) runs them with `gateway.store.writer.drive`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from hashlib import sha256
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gateway.audit import merkle
from gateway.audit.merkle import STORED_LEVEL, Node

if TYPE_CHECKING:
    from asyncpg import Connection as PgConnection

T = TypeVar("T")
NodeRow = tuple[int, int, bytes]


def ddl(blob: str, bigint: str, suffix: str) -> str:
    """Migration text: the stored subtrees and the checkpoints' time-stamp tokens."""
    return f"""
-- Complete subtrees of the audit Merkle tree (gateway/audit/merkle.py): written once, in the
-- transaction that appends the events they cover, never changed.
CREATE TABLE audit_merkle (
    level INTEGER NOT NULL,
    idx   {bigint} NOT NULL,
    hash  {blob} NOT NULL,
    PRIMARY KEY (level, idx)
){suffix};
-- RFC 3161 time-stamp tokens over checkpoints' signed bytes, fetched after signing.
CREATE TABLE audit_timestamps (
    seq        {bigint} PRIMARY KEY,
    token      {blob} NOT NULL,
    tsa_url    TEXT NOT NULL,
    stamped_at TEXT NOT NULL
);
"""


SQLITE_DDL = ddl("BLOB", "INTEGER", " WITHOUT ROWID")
POSTGRES_DDL = ddl("BYTEA", "BIGINT", "")

_INSERT_SQLITE = (
    "INSERT INTO audit_merkle (level, idx, hash) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
)
_INSERT_PG = (
    "INSERT INTO audit_merkle (level, idx, hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
)
_LEAVES = "SELECT canonical FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq"
_NODE = "SELECT hash FROM audit_merkle WHERE level = ? AND idx = ?"
_NODES_PG = (
    "SELECT m.level, m.idx, m.hash FROM audit_merkle m "
    "JOIN unnest($1::int[], $2::bigint[]) AS k(level, idx) ON m.level = k.level AND m.idx = k.idx"
)


class NodeSource(Protocol):
    """Where a tree's stored subtrees and its events' canonical bytes are read (and, on the
    append path, missing subtrees written)."""

    async def nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        """The stored hashes among ``keys``."""
        ...

    async def canonicals(self, lo: int, hi: int) -> list[bytes]:
        """Canonical bytes of leaves ``lo`` up to ``hi`` (events ``lo + 1 .. hi``)."""
        ...

    async def save(self, rows: Sequence[NodeRow]) -> None:
        """Store computed subtrees (readers do nothing)."""
        ...


class SQLiteNodes:
    """`NodeSource` on an SQLite connection; never suspends."""

    def __init__(self, conn: sqlite3.Connection, *, write: bool = False) -> None:
        self._conn = conn
        self._write = write
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_merkle'"
        ).fetchone()
        # A copy from before the tree existed still proves: everything from the events.
        self._has_table = row is not None

    async def nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        out: dict[Node, bytes] = {}
        if not self._has_table:
            return out
        for key in keys:
            row = self._conn.execute(_NODE, key).fetchone()
            if row is not None:
                out[key] = bytes(row[0])
        return out

    async def canonicals(self, lo: int, hi: int) -> list[bytes]:
        return [bytes(r[0]) for r in self._conn.execute(_LEAVES, (lo, hi))]

    async def save(self, rows: Sequence[NodeRow]) -> None:
        if self._write and rows:
            self._conn.executemany(_INSERT_SQLITE, rows)


class PostgresNodes:
    """`NodeSource` on an asyncpg connection or pool."""

    def __init__(self, conn: Any, *, write: bool = False) -> None:
        self._conn = conn
        self._write = write

    async def nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        if not keys:
            return {}
        rows = await self._conn.fetch(_NODES_PG, [k[0] for k in keys], [k[1] for k in keys])
        return {(r[0], r[1]): bytes(r[2]) for r in rows}

    async def canonicals(self, lo: int, hi: int) -> list[bytes]:
        rows = await self._conn.fetch(
            "SELECT canonical FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq", lo, hi
        )
        return [bytes(r[0]) for r in rows]

    async def save(self, rows: Sequence[NodeRow]) -> None:
        if self._write and rows:
            await self._conn.executemany(_INSERT_PG, rows)


async def _leaves_hash(src: NodeSource, level: int, index: int) -> bytes:
    lo = index << level
    canon = await src.canonicals(lo, lo + (1 << level))
    if len(canon) != 1 << level:
        raise LookupError(f"the tree has no leaves {lo}..{lo + (1 << level) - 1}")
    frontier, _ = merkle.extend([], 0, [merkle.leaf_hash(c) for c in canon])
    return frontier[0]


async def _subtree(src: NodeSource, level: int, index: int, known: dict[Node, bytes]) -> bytes:
    """Hash of one complete subtree: stored, else from its halves (storing it), else leaves."""
    key = (level, index)
    if key in known:
        return known[key]
    if level < STORED_LEVEL:
        h = await _leaves_hash(src, level, index)
    else:
        found = await src.nodes([key])
        if key in found:
            h = found[key]
        else:
            left = await _subtree(src, level - 1, 2 * index, known)
            right = await _subtree(src, level - 1, 2 * index + 1, known)
            h = merkle.node_hash(left, right)
            await src.save([(level, index, h)])
    known[key] = h
    return h


async def _small(src: NodeSource, parts: Sequence[Node], known: dict[Node, bytes]) -> None:
    """Hash the subtrees below `STORED_LEVEL` among ``parts`` into ``known``, reading each
    block of 16 leaves they fall in once (a proof's small parts share the leaf's block)."""
    small = sorted({p for p in parts if p[0] < STORED_LEVEL and p not in known})
    blocks: dict[int, int] = {}
    for level, index in small:
        block = (index << level) >> STORED_LEVEL
        blocks[block] = max(blocks.get(block, 0), (index + 1) << level)
    for block, end in blocks.items():
        lo = block << STORED_LEVEL
        leaves = [sha256(b"\x00" + c).digest() for c in await src.canonicals(lo, end)]
        for level, index in small:
            start = (index << level) - lo
            if 0 <= start < len(leaves):
                part = leaves[start : start + (1 << level)]
                if len(part) == 1 << level:
                    known[(level, index)] = merkle.extend([], 0, part)[0][0]


async def range_hashes(src: NodeSource, ranges: Sequence[merkle.Range]) -> list[bytes]:
    """The hash of each range of leaves, its stored subtrees fetched in one query."""
    parts = [merkle.decompose(lo, hi) for lo, hi in ranges]
    stored = sorted({p for ps in parts for p in ps if p[0] >= STORED_LEVEL})
    known = await src.nodes(stored)
    await _small(src, [p for ps in parts for p in ps], known)
    out: list[bytes] = []
    for ps in parts:
        out.append(merkle.fold([await _subtree(src, lv, ix, known) for lv, ix in ps]))
    return out


async def frontier(src: NodeSource, size: int) -> list[bytes]:
    """The frontier of the tree of ``size`` leaves (see `gateway.audit.merkle.extend`)."""
    parts = merkle.decompose(0, size)
    known = await src.nodes([p for p in parts if p[0] >= STORED_LEVEL])
    await _small(src, parts, known)
    return [await _subtree(src, lv, ix, known) for lv, ix in parts]


async def tree_root(src: NodeSource, size: int) -> bytes:
    """Root of the tree of the first ``size`` events."""
    if size == 0:
        return merkle.EMPTY_ROOT
    return merkle.root(await frontier(src, size))


async def leaf(src: NodeSource, index: int) -> bytes:
    """Leaf hash of leaf ``index`` (the event with seq ``index + 1``)."""
    canon = await src.canonicals(index, index + 1)
    if not canon:
        raise LookupError(f"no event {index + 1}")
    return merkle.leaf_hash(canon[0])


async def inclusion_proof(src: NodeSource, index: int, size: int) -> list[bytes]:
    """Inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    return await range_hashes(src, merkle.inclusion_ranges(index, size))


async def consistency_proof(src: NodeSource, old: int, new: int) -> list[bytes]:
    """Consistency proof from the tree of ``old`` leaves to the one of ``new`` leaves."""
    return await range_hashes(src, merkle.consistency_ranges(old, new))


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """`gateway.store.writer.drive` (imported here, not at the top: the writer imports the
    transaction module, which imports this one)."""
    from gateway.store.writer import drive as run

    return run(coro)


# -- the append path -------------------------------------------------------------------------

_FRONTIERS: OrderedDict[tuple[int, str], list[bytes]] = OrderedDict()
_REMEMBERED = 64
"""Heads whose frontier is kept: the newest few are all the append path asks for."""


_LOCK = threading.Lock()
"""Writers of several stores (each SQLite store on a thread of its own) share `_FRONTIERS`."""


def _recall(head: tuple[int, str]) -> list[bytes] | None:
    with _LOCK:
        return _FRONTIERS.get(head)


def _remember(head: tuple[int, str], front: list[bytes]) -> None:
    with _LOCK:
        _FRONTIERS[head] = front
        _FRONTIERS.move_to_end(head)
        while len(_FRONTIERS) > _REMEMBERED:
            _FRONTIERS.popitem(last=False)


def _grow(head: tuple[int, str], front: list[bytes], rows: Sequence[Any]) -> list[NodeRow]:
    """Extend ``front`` (at ``head``) by the appended event ``rows``; the nodes to store."""
    # Rows are stored event rows: seq first, hash and canonical bytes last (EventRow).
    new, nodes = merkle.extend(front, head[0], [sha256(b"\x00" + r[-1]).digest() for r in rows])
    last = rows[-1]
    _remember((last[0], last[-2]), new)
    return nodes


def append_sqlite(conn: sqlite3.Connection, head: tuple[int, str], rows: Sequence[Any]) -> None:
    """Store the subtrees that event ``rows``, appended after ``head``, complete."""
    front = _recall(head)
    if front is None:
        front = drive(frontier(SQLiteNodes(conn, write=True), head[0]))
    nodes = _grow(head, front, rows)
    if nodes:
        conn.executemany(_INSERT_SQLITE, nodes)


async def append_postgres(conn: PgConnection, head: tuple[int, str], rows: Sequence[Any]) -> None:
    """`append_sqlite` on PostgreSQL (the transaction holds the chain's advisory lock)."""
    front = _recall(head)
    if front is None:
        front = await frontier(PostgresNodes(conn, write=True), head[0])
    nodes = _grow(head, front, rows)
    if nodes:
        await conn.executemany(_INSERT_PG, nodes)
