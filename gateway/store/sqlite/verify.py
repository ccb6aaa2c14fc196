"""Chain verification of a database file, split into segments verified in parallel processes.

Verifying is CPU-bound Python (decoding twelve columns per row, rebuilding and hashing the
canonical bytes), so on a machine with several cores a long range is cut into consecutive seq
segments, each verified by `verify_rows` in its own process from the stored hash before it.
The segments are then joined in order: each must end exactly at its last seq with the hash
the next one started from. Anything short of that (a segment that failed, or a seam that does
not line up) is re-verified serially from the start of that segment, after the good segments
before it, so the result, reason included, is exactly what a single serial pass would give.
When no worker process can be started the range is verified serially, with the same answer;
that fallback is logged, and the result says how many processes ran (``processes``).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sqlite3
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from pathlib import Path
from typing import Any

import structlog

from gateway.audit.chain import GENESIS, VerifyResult
from gateway.audit.verifier import verify_rows
from gateway.store import codec

log = structlog.get_logger("gateway.store")

BATCH = 2000
PARALLEL_MIN = 200_000
"""Below this many events the processes cost more to start than they save."""
_MAX_WORKERS = 4
# Payload as a blob: it is hashed as stored, so decoding it to text only to encode it again
# would be wasted work (the verifier accepts either).
_COLUMNS = ", ".join("CAST(payload AS BLOB)" if c == "payload" else c for c in codec.EVENT_COLUMNS)
_SELECT = (
    f"SELECT {_COLUMNS} FROM audit_events "  # noqa: S608 -- constant column list only
    "WHERE seq > ? AND (? < 0 OR seq <= ?) ORDER BY seq LIMIT ?"
)


def connect_read_only(path: str | Path) -> sqlite3.Connection:
    """Open ``path`` read-only; raises FileNotFoundError when it does not exist."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no database file at {str(p)!r}")
    return sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)


def iter_verify_rows(
    conn: sqlite3.Connection, first: int, last: int | None
) -> Iterator[tuple[Any, ...]]:
    """Rows ``first..last`` in seq order as `verify_rows` takes them, ``BATCH`` at a time."""
    end = last if last is not None else -1
    after = first - 1
    while True:
        rows = conn.execute(_SELECT, (after, end, end, BATCH)).fetchall()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def _hash_before(conn: sqlite3.Connection, first: int) -> str:
    if first <= 1:
        return GENESIS
    row = conn.execute("SELECT hash FROM audit_events WHERE seq = ?", (first - 1,)).fetchone()
    return str(row[0]) if row is not None else GENESIS


def _segment(
    path: Path, first: int, last: int | None, start_prev: str, cps: dict[int, str]
) -> VerifyResult:
    with closing(connect_read_only(path)) as conn:
        return verify_rows(
            iter_verify_rows(conn, first, last),
            start_prev_hash=start_prev,
            start_seq=first,
            checkpoints=cps,
        )


def verify_file(
    path: Path, first: int, last: int | None, checkpoints: Mapping[int, str]
) -> VerifyResult:
    """`verify_rows` over events ``first..last`` of ``path``, in parallel when it pays."""
    with closing(connect_read_only(path)) as conn:
        start_prev = _hash_before(conn, first)
        top = conn.execute("SELECT max(seq) FROM audit_events").fetchone()[0] or 0
        end = top if last is None else min(last, top)
        workers = min(_MAX_WORKERS, os.cpu_count() or 1, max(1, (end - first + 1) // PARALLEL_MIN))
        if workers < 2:
            return _segment(path, first, last, start_prev, dict(checkpoints))
        size = (end - first + 1) // workers
        starts = [first + i * size for i in range(workers)]
        prevs = [start_prev, *(_hash_before(conn, s) for s in starts[1:])]
    bounds = [(s, starts[i + 1] - 1) for i, s in enumerate(starts[:-1])]
    bounds.append((starts[-1], last if last is not None else -1))
    # Spawned, not forked: the live gateway runs gRPC and other threads that a fork would copy
    # in an unknown state.
    ctx = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = [
                pool.submit(
                    _segment,
                    path,
                    lo,
                    None if hi < 0 else hi,
                    prevs[i],
                    {s: h for s, h in checkpoints.items() if s >= lo and (hi < 0 or s <= hi)},
                )
                for i, (lo, hi) in enumerate(bounds)
            ]
            results = [f.result() for f in futures]
    except (BrokenProcessPool, OSError) as exc:
        # No processes to be had here (say, a main module a spawned child cannot re-import):
        # the answer must not depend on that, only the time, and the time is worth a warning.
        log.warning(
            "audit.verify_serial_fallback",
            planned_processes=workers,
            error=f"{type(exc).__name__}: {exc}",
        )
        return _segment(path, first, last, start_prev, dict(checkpoints))
    checked = 0
    for i, result in enumerate(results):
        lo, hi = bounds[i]
        prev = start_prev if i == 0 else results[i - 1].head_hash
        seam_ok = prevs[i] == prev
        if result.ok and seam_ok and (hi < 0 or result.head_seq == hi):
            checked += result.checked
            continue
        # Re-run serially from this segment to the end: exactly the serial answer.
        rest = _segment(path, lo, last, prev, {s: h for s, h in checkpoints.items() if s >= lo})
        return dataclasses.replace(rest, checked=checked + rest.checked, processes=workers)
    final = results[-1]
    return VerifyResult(True, checked, None, "", final.head_seq, final.head_hash, workers)
