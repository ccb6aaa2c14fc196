"""Auditor-side figures on a large audit trail: trail lookup latency and verification speed.

Builds a database file with ``--events`` chained audit events (two per decision, with payloads
like the gateway's ``decision.created``), written directly with the same canonical encoding and
chain hash the store uses, plus the matching decision rows. Then prints:

- ``trail``: `AuditFile.trail` of random decisions (opening a read-only connection each time, as
  the CLI and the AuditService do): median and p99 in ms. Target: under 10 ms.
- ``verify``, one process: `verify_rows` over the whole file (chain links, hashes, columns
  against the hashed bytes, payloads against their digests) in this process, events/s, against
  ``hashlib``: a bare loop over the same stored bytes read from the same file in the same
  batches, ``sha256(prev || canonical)`` per event plus ``sha256(payload)``, nothing else.
  Target: verify >= 0.5x of it. Also printed: the same loop on bytes already in memory.
- ``verify``, parallel: `AuditFile.verify`, which verifies consecutive segments in worker
  processes when the file is large enough (one per core, up to four; see
  `gateway.store.sqlite.verify`), against the bare loop run over the same segments in as many
  processes, both timed from the start of their processes. The process count is printed; with
  too few events or cores the verifier runs in one process and this pair is skipped.

Exits 1 when the chain does not verify, the figures do not cover the same events, or the
verifier started worker processes that failed (it then falls back to one serial pass, and the
parallel figure would be that pass's).

Run from the repository root::

    python -m bench.audit_bench                  # 1,000,000 events
    python -m bench.audit_bench --events 100000 --db /tmp/audit.db
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

from gateway.audit.chain import (
    GENESIS,
    canonical_bytes_text_ts,
    canonical_json,
    digest_of_canonical,
)
from gateway.audit.verifier import verify_rows
from gateway.store import codec
from gateway.store.sqlite import verify as sqlite_verify
from gateway.store.sqlite.audit import BATCH, AuditFile
from gateway.store.sqlite.migrations import apply_migrations
from gateway.store.sqlite.verify import connect_read_only, iter_verify_rows
from gateway.timefmt import format_ts

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


class BenchError(RuntimeError):
    """The figures would not mean what they say (chain broken, different events, fallback)."""


class _WatchedPool(ProcessPoolExecutor):
    """The standard pool, recording how many processes the verifier asked for and the futures
    of the segments it gave them."""

    sizes: list[int]
    futures: list[Future[Any]]

    def __init__(self, max_workers: int | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(max_workers, *args, **kwargs)
        self.sizes.append(max_workers or os.cpu_count() or 1)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future


@contextlib.contextmanager
def _watch_verifier_processes() -> Iterator[type[_WatchedPool]]:
    """The verifier falls back to one serial pass, with the same answer, when its worker
    processes fail; only watching its pool tells which figure was measured."""

    class Pool(_WatchedPool):
        sizes: list[int] = []
        futures: list[Future[Any]] = []

    original = sqlite_verify.ProcessPoolExecutor
    sqlite_verify.ProcessPoolExecutor = Pool
    try:
        yield Pool
    finally:
        sqlite_verify.ProcessPoolExecutor = original


def bench_verify_one_process(path: Path) -> tuple[int, float]:
    """`verify_rows` over every stored row, in this process: the verifier's serial pass."""
    t = time.perf_counter()
    with contextlib.closing(connect_read_only(path)) as conn:
        result = verify_rows(iter_verify_rows(conn, 1, None))
    elapsed = time.perf_counter() - t
    if not result.ok:
        raise BenchError(f"the chain does not verify: {result.reason}")
    return result.checked, elapsed


def bench_verify(path: Path) -> tuple[int, float, int]:
    """`AuditFile.verify` as the CLI runs it; returns (events, seconds, processes used)."""
    with _watch_verifier_processes() as pool:
        t = time.perf_counter()
        report = AuditFile(path).verify()
        elapsed = time.perf_counter() - t
    if not report.result.ok:
        raise BenchError(f"the chain does not verify: {report.result.reason}")
    failed = [f.exception() for f in pool.futures if f.exception() is not None]
    if failed:
        raise BenchError(
            f"{len(failed)} of {len(pool.futures)} verifier worker processes failed "
            f"({failed[0]!r}); the verifier fell back to one serial pass"
        )
    processes = pool.sizes[0] if pool.sizes else 1
    return report.result.checked, elapsed, processes


def _hash_rows(conn: sqlite3.Connection, prev: bytes, after: int, last: int | None) -> int:
    """The bare loop: hash rows ``after+1..last`` as stored, ``BATCH`` at a time."""
    end = last if last is not None else -1
    n = 0
    while True:
        rows = conn.execute(
            "SELECT seq, canonical, payload FROM audit_events"
            " WHERE seq > ? AND (? < 0 OR seq <= ?) ORDER BY seq LIMIT ?",
            (after, end, end, BATCH),
        ).fetchall()
        if not rows:
            return n
        for _seq, canonical, payload in rows:
            h = sha256(prev)
            h.update(canonical)
            prev = h.digest()
            sha256(payload.encode())
        n += len(rows)
        after = rows[-1][0]


def bare_hashlib_file(path: Path) -> tuple[int, float]:
    """The same stored bytes, from the same file in the same batches, hashed and nothing else."""
    t = time.perf_counter()
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    n = _hash_rows(conn, bytes(32), 0, None)
    conn.close()
    return n, time.perf_counter() - t


def _hash_segment(path: Path, first: int, last: int | None) -> int:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT hash FROM audit_events WHERE seq = ?", (first - 1,)).fetchone()
        prev = bytes.fromhex(row[0]) if row is not None else bytes(32)
        return _hash_rows(conn, prev, first - 1, last)
    finally:
        conn.close()


def bare_hashlib_parallel(path: Path, events: int, processes: int) -> tuple[int, float]:
    """The bare loop over ``processes`` consecutive segments in as many spawned processes, timed
    from their start as the verifier's are."""
    size = events // processes
    bounds = [(1 + i * size, i * size + size) for i in range(processes)]
    bounds[-1] = (bounds[-1][0], events)
    t = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        counts = list(pool.map(_hash_segment, [path] * processes, *zip(*bounds, strict=True)))
    return sum(counts), time.perf_counter() - t


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="reuse or create this file (default: temporary)")
    args = parser.parse_args()
    try:
        run(args.events, args.db)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def run(events: int, db: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = db or Path(tmp) / "audit.db"
        if path.exists():
            conn = sqlite3.connect(path)
            ids = [r[0] for r in conn.execute("SELECT id FROM decisions")]
            conn.close()
        else:
            t = time.perf_counter()
            ids = build(path, events)
            print(f"built {events:,} events in {time.perf_counter() - t:.1f} s")
        med, p99 = bench_trail(path, ids)
        print(
            f"trail of one decision among {len(ids) * 2:,} events: "
            f"median {med:.2f} ms, p99 {p99:.2f} ms (target < 10 ms)"
        )
        n1, v1 = bench_verify_one_process(path)
        n2, b = bare_hashlib_file(path)
        n3, m = bare_hashlib_memory(path)
        if not n1 == n2 == n3:
            raise BenchError(f"the figures cover different events: {n1:,}, {n2:,}, {n3:,}")
        print("one process:")
        print(f"  audit verify:              {n1 / v1:>12,.0f} events/s ({v1:.2f} s)")
        print(f"  bare hashlib, from file:   {n2 / b:>12,.0f} events/s ({b:.2f} s)")
        print(f"  bare hashlib, in memory:   {n3 / m:>12,.0f} events/s ({m:.2f} s)")
        print(
            f"  ratio verify / bare hashlib from file: {b / v1:.2f}x (target >= 0.5x); "
            f"in memory: {m / v1:.2f}x"
        )
        n, v, processes = bench_verify(path)
        if n != n1:
            raise BenchError(f"AuditFile.verify checked {n:,} events, the serial pass {n1:,}")
        if processes < 2:
            print(
                f"AuditFile.verify ran in one process ({n / v:,.0f} events/s; "
                f"{os.cpu_count()} cores): too few events or cores to split, no parallel figure"
            )
            return
        np_, bp = bare_hashlib_parallel(path, n, processes)
        if np_ != n:
            raise BenchError(f"the parallel baseline hashed {np_:,} events, not {n:,}")
        print(f"{processes} processes ({os.cpu_count()} cores), process start-up included:")
        print(f"  audit verify (AuditFile):  {n / v:>12,.0f} events/s ({v:.2f} s)")
        print(f"  bare hashlib, from file:   {np_ / bp:>12,.0f} events/s ({bp:.2f} s)")
        print(f"  ratio verify / bare hashlib from file: {bp / v:.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
