"""The audit Merkle tree on a large trail: proof latency, and what keeping the tree costs appends.

Builds a database file with ``--events`` audit events appended through the store's own append
path (`gateway.store.tx.SQLiteTx.append`: chain, insert, and the tree's stored subtrees, in
transactions of ``--batch`` events), timing the appends against a baseline in the same run: the
same events chained and inserted by the same statement into a second file, without the tree.
Then, on the big file, for random events:

- ``prove``: an inclusion proof against the tree of every event, read as the CLI reads it
  (`FileEvidence.inclusion`, opening a read-only connection) and checked, median and p99 in
  ms. Target: under 5 ms on 1,000,000 events.
- ``trail``: `AuditFile.trail` of the same event's decision (one connection, one indexed query):
  the baseline a proof is compared with.
- ``consistency``: a consistency proof between two random sizes.

Every proof is checked against the root computed independently from all stored canonical bytes.

Run from the repository root::

    python -m bench.merkle_bench                      # 1,000,000 events
    python -m bench.merkle_bench --events 100000 --db /tmp/merkle.db
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from gateway.audit import merkle
from gateway.audit.chain import GENESIS
from gateway.audit.drafts import PreparedDraft
from gateway.store import sql
from gateway.store.sqlite.audit import AuditFile
from gateway.store.sqlite.evidence import FileEvidence
from gateway.store.sqlite.migrations import apply_migrations
from gateway.store.tx import SQLiteTx
from gateway.store.writer import drive
from gateway.timefmt import format_ts

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _drafts(first: int, n: int) -> list[PreparedDraft]:
    """``n`` events, two per decision, with payload digests like the gateway's."""
    out = []
    for i in range(first, first + n):
        did = f"dec-{i // 2:09d}"
        out.append(
            PreparedDraft(
                decision_id=did,
                type="decision.created" if i % 2 == 0 else "decision.reviewed",
                actor="app:k1" if i % 2 == 0 else "user:alice",
                payload='{"status":"APPROVED"}',
                payload_digest="sha256:" + f"{i:064x}",
                trace_id=f"{i:032x}",
                span_id=f"{i:016x}",
                ts=None,
            )
        )
    return out


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    apply_migrations(conn, format_ts(T0))
    return conn


def build(path: Path, plain: Path, events: int, batch: int) -> tuple[float, float]:
    """Append ``events`` to both files in transactions of ``batch``, alternating batch by batch
    (so load from elsewhere on the machine falls on both alike); seconds spent appending with
    the tree, and without it (the same chain and insert statement, no tree)."""
    conns = (_open(path), _open(plain))
    heads = [(0, GENESIS), (0, GENESIS)]
    spent = [0.0, 0.0]
    now = format_ts(T0)
    for first in range(0, events, batch):
        drafts = _drafts(first, min(batch, events - first))
        for k, conn in enumerate(conns):
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            tx = SQLiteTx(conn, now, heads[k])
            if k == 0:
                drive(tx.append(drafts))
            else:
                conn.executemany(sql.INSERT_EVENT, tx.chain(drafts))
            conn.execute("COMMIT")
            spent[k] += time.perf_counter() - start
            heads[k] = tx.head
    for conn in conns:
        conn.close()
    return spent[0], spent[1]


def _times(fn: Callable[[int], object], picks: list[int]) -> list[float]:
    out = []
    for p in picks:
        start = time.perf_counter()
        fn(p)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _p99(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.99) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.merkle_bench")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500, help="events per transaction")
    parser.add_argument("--samples", type=int, default=500, help="proofs timed")
    parser.add_argument("--db", type=Path, help="file for the big trail (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "merkle.db"
        plain = Path(tmp) / "plain.db"
        for p in (db, plain):
            p.unlink(missing_ok=True)
        print(f"appending {args.events:,} events in transactions of {args.batch} ...")
        with_tree, without = build(db, plain, args.events, args.batch)
        conn = sqlite3.connect(db)
        canon = [bytes(r[0]) for r in conn.execute("SELECT canonical FROM audit_events")]
        nodes = conn.execute("SELECT count(*) FROM audit_merkle").fetchone()[0]
        conn.close()
        front, _ = merkle.extend([], 0, [merkle.leaf_hash(c) for c in canon])
        root = merkle.root(front)
        n = len(canon)
        del canon
        evidence, file = FileEvidence(db), AuditFile(db)
        assert evidence.tree_root(n) == root, "stored tree disagrees with the events"
        rng = random.Random(7)
        picks = [rng.randrange(n) for _ in range(args.samples)]

        def prove(i: int) -> None:
            leaf, path = evidence.inclusion(i, n)
            merkle.verify_inclusion(i, n, leaf, path, root)

        def trail(i: int) -> None:
            assert file.trail(f"dec-{i // 2:09d}")

        sizes = [sorted(rng.randrange(1, n + 1) for _ in range(2)) for _ in range(100)]

        def consistency(k: int) -> None:
            old, new = sizes[k]
            path = evidence.consistency_path(old, new)
            if old < new:  # the roots come from the store; the proof must join them
                old_root, new_root = evidence.tree_root(old), evidence.tree_root(new)
                merkle.verify_consistency(old, new, old_root, new_root, path)

        prove_ms = _times(prove, picks)
        trail_ms = _times(trail, picks)
        cons_ms = _times(consistency, list(range(len(sizes))))
    med_p, med_t = statistics.median(prove_ms), statistics.median(trail_ms)
    print(f"events {n:,}, stored subtrees {nodes:,} ({nodes / n:.3f} per event)")
    print(
        f"append with tree {n / with_tree:,.0f} events/s, without {n / without:,.0f} events/s: "
        f"the tree makes appends take {with_tree / without:.3f}x the time"
    )
    print(f"prove        median {med_p:.3f} ms  p99 {_p99(prove_ms):.3f} ms  (target < 5 ms)")
    print(f"trail        median {med_t:.3f} ms  p99 {_p99(trail_ms):.3f} ms  (baseline)")
    print(f"prove/trail  {med_p / med_t:.2f}x")
    print(f"consistency  median {statistics.median(cons_ms):.3f} ms  p99 {_p99(cons_ms):.3f} ms")
    return 0 if med_p < 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
