"""Write throughput of the SQLite store against raw ``sqlite3`` on the same rows.

Three figures from one run, each on a fresh database file in the same temporary directory:

- ``raw``: stdlib ``sqlite3``, the rows already encoded and chained, ``executemany`` of decisions,
  events and tasks, ``batch`` decisions per transaction, ``synchronous=FULL``. The ceiling.
- ``store``: ``SQLiteStore.create_decision`` from ``concurrency`` coroutines (each decision with
  one audit event and one review task): encoding, idempotency check, chaining, group commit,
  answering each caller after its commit.
- ``aiosqlite``: the same group-commit writer driven through aiosqlite's API (one thread hop per
  statement: BEGIN, SELECT, three executemany, COMMIT), to compare with the store's one hop per
  batch on its own writer thread.

Run from the repository root::

    python -m bench.store_bench              # N=20000, concurrency 256
    python -m bench.store_bench -n 5000 --concurrency 1 --uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.audit.chain import GENESIS, canonical_bytes_text_ts, chain_hash
from gateway.audit.drafts import PreparedDraft, prepare_draft
from gateway.store import SQLiteStore, codec
from gateway.store.sqlite.migrations import apply_migrations
from gateway.store.sqlite.verify import verify_file
from gateway.timefmt import format_ts
from gateway.types import AuditDraft, Decision, ModelRef, ReviewTask, Status, TaskKind, Validation

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def make_work(n: int) -> list[tuple[Decision, list[AuditDraft], list[ReviewTask]]]:
    work = []
    for i in range(n):
        d = Decision(
            id=f"01J{i:023d}",
            application="credit-limit",
            tier="limited",
            status=Status.PENDING_REVIEW,
            input={"amount": 1000 + i, "customer": {"segment": "retail", "country": "DE"}},
            model=ModelRef("credit-scorer", "credit_v3", "3", Validation.APPROVED),
            model_output={"score": 0.5, "explanation": {"income": 0.2, "history": -0.1}},
            final_output=None,
            reasons=("route[2]: grey zone",),
            rule="route[2]",
            created_at=T0,
            updated_at=T0,
            trace_id="0af7651916cd43dd8448eb211c80319c",
            policy_version="sha256:0123456789abcdef",
            idempotency_key=f"req-{i}",
            approvals_needed=1,
            review_deadline=T0 + timedelta(hours=1),
        )
        event = AuditDraft(
            d.id,
            "decision.created",
            "app:key1",
            {"status": d.status.value, "tier": d.tier, "rule": d.rule},
            trace_id=d.trace_id,
            span_id="b7ad6b7169203331",
        )
        task = ReviewTask(
            d.id, TaskKind.DECISION, d.application, d.tier, ("reviewers",), d.review_deadline, T0
        )
        work.append((d, [event], [task]))
    return work


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


INSERT_DECISION = _insert("decisions", codec.DECISION_COLUMNS)
INSERT_EVENT = _insert("audit_events", codec.EVENT_COLUMNS)
INSERT_TASK = _insert("review_tasks", codec.TASK_COLUMNS)


def chain_rows(
    drafts: list[PreparedDraft], head: tuple[int, str], now: str
) -> tuple[list[tuple[Any, ...]], tuple[int, str]]:
    seq, prev = head
    rows = []
    for d in drafts:
        seq += 1
        ts = d.ts or now
        canonical = canonical_bytes_text_ts(
            seq, ts, d.decision_id, d.type, d.actor, d.payload_digest, d.trace_id, d.span_id
        )
        h = chain_hash(prev, canonical)
        rows.append(
            (seq, ts, d.decision_id, d.type, d.actor, d.payload, d.payload_digest, d.trace_id,
             d.span_id, prev, h, canonical)
        )  # fmt: skip
        prev = h
    return rows, (seq, prev)


def open_raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    apply_migrations(conn, format_ts(T0))
    return conn


def bench_raw(path: Path, work: list[Any], batch: int) -> float:
    """Rows encoded and chained up front (not timed); only the inserts and commits are timed."""
    now = format_ts(T0)
    head = (0, GENESIS)
    batches = []
    for start in range(0, len(work), batch):
        chunk = work[start : start + batch]
        drafts = [prepare_draft(e) for _, events, _ in chunk for e in events]
        events, head = chain_rows(drafts, head, now)
        batches.append(
            (
                [codec.decision_row(d) for d, _, _ in chunk],
                events,
                [codec.task_row(t) for _, _, tasks in chunk for t in tasks],
            )
        )
    conn = open_raw(path)
    t = time.perf_counter()
    for decisions, events, tasks in batches:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_DECISION, decisions)
        conn.executemany(INSERT_EVENT, events)
        conn.executemany(INSERT_TASK, tasks)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t
    conn.close()
    return elapsed


async def drive(
    call: Callable[[Decision, list[AuditDraft], list[ReviewTask]], Coroutine[Any, Any, Any]],
    work: list[Any],
    concurrency: int,
) -> float:
    it = iter(work)

    async def worker() -> None:
        for d, events, tasks in it:
            await call(d, events, tasks)

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t


async def bench_store(path: Path, work: list[Any], concurrency: int) -> tuple[float, int]:
    store = SQLiteStore(path)
    await store.start()
    try:
        elapsed = await drive(store.create_decision, work, concurrency)
    finally:
        await store.stop()
    return elapsed, store.stats.transactions


async def bench_aiosqlite(
    path: Path, work: list[Any], concurrency: int, batch: int
) -> tuple[float, int]:
    """The same group commit, each statement one await on an aiosqlite connection."""
    open_raw(path).close()
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA synchronous=FULL")
    await conn.execute("PRAGMA foreign_keys=ON")
    queue: asyncio.Queue[Any] = asyncio.Queue()
    head = (0, GENESIS)
    transactions = 0

    async def writer() -> None:
        nonlocal head, transactions
        while True:
            jobs = [await queue.get()]
            while len(jobs) < batch and not queue.empty():
                jobs.append(queue.get_nowait())
            if jobs[0] is None:
                return
            now = format_ts(datetime.now(UTC))
            keys = [v for d, *_ in jobs for v in (d.application, d.idempotency_key)]
            values = ", ".join(["(?, ?)"] * len(jobs))
            await conn.execute("BEGIN IMMEDIATE")
            await conn.execute_fetchall(
                "SELECT id FROM decisions WHERE (application, idempotency_key) IN "
                f"(VALUES {values})",
                keys,
            )
            drafts = [e for _, _, events, _, _ in jobs for e in events]
            rows, head = chain_rows(drafts, head, now)
            await conn.executemany(INSERT_DECISION, [row for _, row, *_ in jobs])
            await conn.executemany(INSERT_EVENT, rows)
            await conn.executemany(INSERT_TASK, [t for *_, tasks, _ in jobs for t in tasks])
            await conn.execute("COMMIT")
            transactions += 1
            for d, *_, fut in jobs:
                fut.set_result((d, True))

    async def create(d: Decision, events: list[AuditDraft], tasks: list[ReviewTask]) -> Any:
        fut = asyncio.get_running_loop().create_future()
        queue.put_nowait(
            (
                d,
                codec.decision_row(d),
                [prepare_draft(e) for e in events],
                [codec.task_row(t) for t in tasks],
                fut,
            )
        )
        return await fut

    task = asyncio.create_task(writer())
    try:
        elapsed = await drive(create, work, concurrency)
    finally:
        queue.put_nowait(None)
        await task
        await conn.close()
    return elapsed, transactions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20_000, help="decisions per run")
    p.add_argument("--concurrency", type=int, default=256, help="callers in flight")
    p.add_argument("--batch", type=int, default=256, help="decisions per raw transaction")
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    p.add_argument("--uvloop", action="store_true", help="run the event loop on uvloop")
    p.add_argument("--dir", type=Path, help="directory for the database files (default: tmp)")
    args = p.parse_args(argv)

    run: Callable[[Coroutine[Any, Any, Any]], Any] = asyncio.run
    if args.uvloop:
        import uvloop

        run = uvloop.run

    work = make_work(args.n)
    n = args.n
    rates: dict[str, list[float]] = {"raw": [], "store": [], "aiosqlite": []}
    cpu: dict[str, list[float]] = {"raw": [], "store": [], "aiosqlite": []}
    tx: dict[str, int] = {"raw": -(-n // args.batch)}
    ok = True
    for _ in range(args.rounds):  # interleaved, so a noisy neighbour hits every variant alike
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            d = Path(tmp)
            c = time.process_time()
            rates["raw"].append(n / bench_raw(d / "raw.db", work, args.batch))
            cpu["raw"].append(time.process_time() - c)
            c = time.process_time()
            elapsed, tx["store"] = run(bench_store(d / "store.db", work, args.concurrency))
            cpu["store"].append(time.process_time() - c)
            rates["store"].append(n / elapsed)
            ok = ok and verify_file(d / "store.db", 1, None, {}).ok
            c = time.process_time()
            elapsed, tx["aiosqlite"] = run(
                bench_aiosqlite(d / "aio.db", work, args.concurrency, args.batch)
            )
            cpu["aiosqlite"].append(time.process_time() - c)
            rates["aiosqlite"].append(n / elapsed)

    raw = statistics.median(rates["raw"])
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"N={n} concurrency={args.concurrency} loop={loop} rounds={args.rounds} (medians)")
    labels = {
        "raw": "raw sqlite3 executemany",
        "store": "SQLiteStore",
        "aiosqlite": "aiosqlite, hop/statement",
    }
    for key, label in labels.items():
        rate = statistics.median(rates[key])
        cpu_us = statistics.median(cpu[key]) / n * 1e6
        print(
            f"  {label:25s} {rate:9,.0f} decisions/s  ratio to raw {rate / raw:4.2f}  "
            f"{tx[key]:5d} transactions  {cpu_us:5.1f} us CPU/decision"
        )
    print(f"  store chain verified: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
