"""The Merkle tree kept by the stores' append path, on SQLite and PostgreSQL: its root and every
proof equal a computation from the stored events alone, and a database whose stored subtrees
are missing (migrated from before the tree) still proves, and is filled by the next append."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.audit import merkle
from gateway.store import merkle as stored
from gateway.store.postgres.store import PostgresStore
from gateway.store.sqlite.store import SQLiteStore
from gateway.types import AuditDraft
from tests.audit_builders import audit_decision
from tests.pgserver import pg_server, with_search_path

__all__ = ["pg_server"]


@pytest.fixture(params=["sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_server: str
) -> AsyncIterator[Any]:
    """A started store of either kind (PostgreSQL in a schema of this test's own)."""
    if request.param == "sqlite":
        s: Any = SQLiteStore(tmp_path / "db.sqlite")
        await s.start()
        yield s
        await s.stop()
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_server)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    s = PostgresStore(with_search_path(pg_server, schema))
    await s.start()
    yield s
    await s.stop()
    conn = await asyncpg.connect(pg_server)
    await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await conn.close()


async def _append(store: Any, first: int, n: int) -> None:
    """``n`` decisions of two events each, submitted at once (committed in batches)."""

    async def one(i: int) -> None:
        d = audit_decision(i)
        drafts = [
            AuditDraft(d.id, "decision.created", "app:k1", {"i": i}),
            AuditDraft(d.id, "review.requested", "system", {}),
        ]
        await store.create_decision(d, drafts, [])

    await asyncio.gather(*(one(i) for i in range(first, first + n)))


async def _canonicals(store: Any) -> list[bytes]:
    events = await store.audit_events(after_seq=0, limit=100_000)
    return [e.canonical for e in events]


def _nodes(store: Any) -> stored.NodeSource:
    if isinstance(store, SQLiteStore):
        return stored.SQLiteNodes(sqlite3.connect(store.path))
    return stored.PostgresNodes(store.pool)


async def _assert_matches_events(store: Any) -> int:
    """Root and every inclusion proof (and consistency proofs from a few sizes) from the store
    equal the ones computed from the events' canonical bytes; returns the tree size."""
    leaves = [merkle.leaf_hash(c) for c in await _canonicals(store)]
    n = len(leaves)
    src = _nodes(store)
    roots = [merkle.EMPTY_ROOT]
    front: list[bytes] = []
    for i, leaf in enumerate(leaves):
        front, _ = merkle.extend(front, i, [leaf])
        roots.append(merkle.root(front))
    assert await stored.tree_root(src, n) == roots[n]
    for i in range(n):
        path = await stored.inclusion_proof(src, i, n)
        merkle.verify_inclusion(i, n, leaves[i], path, roots[n])
    for old in (1, 2, 15, 16, 17, 33, n // 2, n - 1):
        if 0 < old < n:
            path = await stored.consistency_proof(src, old, n)
            merkle.verify_consistency(old, n, roots[old], roots[n], path)
    return n


async def _stored_count(store: Any) -> int:
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as conn:
            return int(conn.execute("SELECT count(*) FROM audit_merkle").fetchone()[0])
    return int(await store.pool.fetchval("SELECT count(*) FROM audit_merkle"))


async def _forget_stored(store: Any) -> None:
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute("DELETE FROM audit_merkle")
        return
    await store.pool.execute("DELETE FROM audit_merkle")


async def test_the_stored_tree_matches_the_events(store: Any) -> None:
    """After appends one at a time and in concurrent batches, the stored tree proves every
    event against the root computed from the events, and holds each complete subtree of 16
    events or more once."""
    for i in range(5):
        await _append(store, i, 1)
    await _append(store, 100, 60)
    n = await _assert_matches_events(store)
    expected = sum(n >> level for level in range(merkle.STORED_LEVEL, n.bit_length()))
    assert await _stored_count(store) == expected


async def test_missing_subtrees_are_recomputed_and_refilled(store: Any) -> None:
    """A database without its stored subtrees still proves from the events, and the next
    append after a restart stores every missing subtree again."""
    await _append(store, 0, 40)
    before = await _stored_count(store)
    assert before > 0
    await _forget_stored(store)
    await _assert_matches_events(store)
    stored._FRONTIERS.clear()  # as a process starting on that database would have it
    await _append(store, 500, 1)
    n = await _assert_matches_events(store)
    expected = sum(n >> level for level in range(merkle.STORED_LEVEL, n.bit_length()))
    assert await _stored_count(store) == expected
