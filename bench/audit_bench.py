"""Auditor-side figures on a large audit trail: trail lookup latency and verification speed.

Builds a database file with ``--events`` chained audit events (two per decision, with payloads
like the gateway's ``decision.created``), written directly with the same canonical encoding and
chain hash the store uses, plus the matching decision rows. Then prints:

- ``trail``: `AuditFile.trail` of random decisions (opening a read-only connection each time, as
  the CLI and the AuditService do): median and p99 in ms. Target: under 10 ms.
- ``verify``: `AuditFile.verify` over the whole file (chain links, hashes, columns against the
  hashed bytes, payloads against their digests), events/s. It verifies consecutive segments in
  parallel processes (one per core, up to four; see `gateway.store.sqlite_verify`), so the
  figure depends on the cores free; the core count is printed with it.
- ``hashlib``: a bare loop over the same stored bytes read from the same file in the same
  batches: ``sha256(prev || canonical)`` per event plus ``sha256(payload)``, nothing else.
  Target: verify >= 0.5x of it. Also printed: the same loop on bytes already in memory.

Run from the repository root::

    python -m bench.audit_bench                  # 1,000,000 events
    python -m bench.audit_bench --events 100000 --db /tmp/audit.db
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path

from gateway.audit.chain import (
    GENESIS,
    canonical_bytes_text_ts,
    canonical_json,
    digest_of_canonical,
    format_ts,
)
from gateway.store import codec
from gateway.store.migrations import apply_migrations
from gateway.store.sqlite_audit import BATCH, AuditFile

T0 = datetime(2025, 1, 1, tzinfo=UTC)
_INSERT_EVENT = (
    f"INSERT INTO audit_events ({', '.join(codec.EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(codec.EVENT_COLUMNS))})"
)
_INSERT_DECISION = (
    "INSERT INTO decisions (id, application, tier, status, input, reasons, rule, created_at,"
    " updated_at, trace_id, policy_version, subject_ref)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def build(path: Path, n_events: int) -> list[str]:
    """Write ``n_events`` chained events (two per decision); returns the decision ids."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    apply_migrations(conn, format_ts(T0))
    rng = random.Random(7)
    ids: list[str] = []
    prev = GENESIS
    seq = 0
    events: list[tuple[object, ...]] = []
    decisions: list[tuple[object, ...]] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(_INSERT_DECISION, decisions)
        conn.executemany(_INSERT_EVENT, events)
        conn.execute("COMMIT")
        decisions.clear()
        events.clear()

    for i in range(n_events // 2):
        did = f"d{i:09d}"
        ids.append(did)
        ts = format_ts(T0 + timedelta(milliseconds=10 * i))
        trace = f"{rng.getrandbits(128):032x}"
        decisions.append(
            (
                did,
                "credit-limit",
                "limited",
                "APPROVED",
                "{}",
                "[]",
                "route[0]",
                ts,
                ts,
                trace,
                "sha256:abc",
                f"cust-{i % 50_000}",
            )
        )
        for type_, actor, payload in (
            (
                "decision.created",
                "app:k1",
                {
                    "application": "credit-limit",
                    "tier": "limited",
                    "status": "PENDING_REVIEW",
                    "rule": "route[2]",
                    "reasons": ["grey zone"],
                    "policy_version": "sha256:" + "ab" * 32,
                    "model": {
                        "backend": "credit-scorer",
                        "name": "credit_v3",
                        "version": "3",
                        "validation": "approved",
                    },
                    "input": {"income": 85000 + i, "debt_ratio": 0.2, "amount": 15000},
                    "model_output": {"score": 0.5, "explanation": "income 85k, ratio 0.2"},
                    "subject_ref": f"cust-{i % 50_000}",
                },
            ),
            (
                "decision.reviewed",
                "user:alice",
                {
                    "verdict": "approve",
                    "reviewer": "alice",
                    "role": "reviewer",
                    "reason": "",
                    "status": "APPROVED",
                    "approvals": 1,
                    "approvals_needed": 1,
                    "output": None,
                },
            ),
        ):
            seq += 1
            body = canonical_json(payload)
            digest = digest_of_canonical(body)
            span = f"{rng.getrandbits(64):016x}"
            canonical = canonical_bytes_text_ts(seq, ts, did, type_, actor, digest, trace, span)
            h = sha256(bytes.fromhex(prev))
            h.update(canonical)
            hash_ = h.hexdigest()
            events.append(
                (
                    seq,
                    ts,
                    did,
                    type_,
                    actor,
                    body.decode(),
                    digest,
                    trace,
                    span,
                    prev,
                    hash_,
                    canonical,
                )
            )
            prev = hash_
        if len(events) >= 20_000:
            flush()
    flush()
    conn.close()
    return ids


def bench_trail(path: Path, ids: list[str], n: int = 300) -> tuple[float, float]:
    audit = AuditFile(path)
    rng = random.Random(1)
    times = []
    for _ in range(n):
        did = rng.choice(ids)
        t = time.perf_counter()
        events = audit.trail(did)
        times.append(time.perf_counter() - t)
        assert len(events) == 2
    times.sort()
    return statistics.median(times) * 1e3, times[int(len(times) * 0.99)] * 1e3


def bench_verify(path: Path) -> tuple[int, float]:
    t = time.perf_counter()
    report = AuditFile(path).verify()
    elapsed = time.perf_counter() - t
    assert report.result.ok, report.result.reason
    return report.result.checked, elapsed


def bare_hashlib_file(path: Path) -> tuple[int, float]:
    """The same stored bytes, from the same file in the same batches, hashed and nothing else."""
    t = time.perf_counter()
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    prev = bytes(32)
    n = 0
    after = 0
    while True:
        rows = conn.execute(
            "SELECT seq, canonical, payload FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, BATCH),
        ).fetchall()
        if not rows:
            break
        for _seq, canonical, payload in rows:
            h = sha256(prev)
            h.update(canonical)
            prev = h.digest()
            sha256(payload.encode())
        n += len(rows)
        after = rows[-1][0]
    conn.close()
    return n, time.perf_counter() - t


def bare_hashlib_memory(path: Path) -> tuple[int, float]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    data = conn.execute("SELECT canonical, payload FROM audit_events ORDER BY seq").fetchall()
    conn.close()
    blobs = [(c, p.encode()) for c, p in data]
    t = time.perf_counter()
    prev = bytes(32)
    for canonical, payload in blobs:
        h = sha256(prev)
        h.update(canonical)
        prev = h.digest()
        sha256(payload)
    return len(blobs), time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="reuse or create this file (default: temporary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "audit.db"
        if path.exists():
            conn = sqlite3.connect(path)
            ids = [r[0] for r in conn.execute("SELECT id FROM decisions")]
            conn.close()
        else:
            t = time.perf_counter()
            ids = build(path, args.events)
            print(f"built {args.events:,} events in {time.perf_counter() - t:.1f} s")
        med, p99 = bench_trail(path, ids)
        print(
            f"trail of one decision among {len(ids) * 2:,} events: "
            f"median {med:.2f} ms, p99 {p99:.2f} ms (target < 10 ms)"
        )
        n, v = bench_verify(path)
        n2, b = bare_hashlib_file(path)
        n3, m = bare_hashlib_memory(path)
        assert n == n2 == n3
        print(
            f"audit verify:              {n / v:>12,.0f} events/s ({v:.2f} s, "
            f"{os.cpu_count()} cores)"
        )
        print(f"bare hashlib, from file:   {n / b:>12,.0f} events/s ({b:.2f} s)")
        print(f"bare hashlib, in memory:   {n / m:>12,.0f} events/s ({m:.2f} s)")
        print(
            f"ratio verify / bare hashlib from file: {b / v:.2f}x (target >= 0.5x); "
            f"in memory: {m / v:.2f}x"
        )


if __name__ == "__main__":
    main()
