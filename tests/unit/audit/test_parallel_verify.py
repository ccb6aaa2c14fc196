"""Verifying a file in parallel segments gives exactly the serial answer, tampered or not."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.audit.chain import GENESIS, VerifyResult, canonical_bytes, chain_hash
from gateway.store import SQLiteStore
from gateway.store.sqlite import verify as sqlite_verify
from gateway.timefmt import parse_ts
from gateway.types import AuditDraft, Decision
from tests.audit_builders import audit_decision

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
N = 40  # two segments of 20 with PARALLEL_MIN = 10 on two cores: the seam is 20 | 21


def _decision(i: int) -> Decision:
    return audit_decision(i, input={"n": i})


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "gateway.db"

    async def fill() -> None:
        async with SQLiteStore(path) as store:
            for i in range(1, N + 1):
                d = _decision(i)
                draft = AuditDraft(d.id, "decision.created", "app:k1", {"input": d.input})
                await store.create_decision(d, [draft], [])

    asyncio.run(fill())
    assert (os.cpu_count() or 1) >= 2, "the parallel path needs two cores to run at all"
    monkeypatch.setattr(sqlite_verify, "PARALLEL_MIN", 10)
    return path


class _RecordingPool(ProcessPoolExecutor):
    """The standard process pool, keeping the futures of the work it is given.

    The verifier falls back to one serial pass when no worker process can run, with the same
    answer; only these futures tell whether segments were in fact verified in worker processes.
    """

    futures: list[Future[VerifyResult]]

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future


@pytest.fixture
def worker_runs(monkeypatch: pytest.MonkeyPatch) -> list[Future[VerifyResult]]:
    """The futures of every segment handed to a worker process while the test runs."""
    recorded: list[Future[VerifyResult]] = []

    class Pool(_RecordingPool):
        futures = recorded

    monkeypatch.setattr(sqlite_verify, "ProcessPoolExecutor", Pool)
    return recorded


def _assert_ran_in_workers(futures: list[Future[VerifyResult]], segments: int) -> None:
    assert len(futures) == segments, f"{len(futures)} segments went to worker processes"
    assert all(f.done() and f.exception() is None for f in futures), [
        f.exception() for f in futures
    ]


def _sql(*statements: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for s in statements:
            conn.execute(s)

    return run


def _rehash_20(conn: sqlite3.Connection) -> None:
    ts, did, type_, digest, prev = conn.execute(
        "SELECT ts, decision_id, type, payload_digest, prev_hash FROM audit_events WHERE seq = 20"
    ).fetchone()
    canonical = canonical_bytes(20, parse_ts(ts), did, type_, "user:eve", digest, "", "")
    conn.execute(
        "UPDATE audit_events SET actor = 'user:eve', canonical = ?, hash = ? WHERE seq = 20",
        (canonical, chain_hash(prev, canonical)),
    )


TAMPERS: dict[str, Callable[[sqlite3.Connection], None]] = {
    "none": _sql(),
    "column in second segment": _sql("UPDATE audit_events SET actor = 'x' WHERE seq = 30"),
    "last of first segment deleted": _sql("DELETE FROM audit_events WHERE seq = 20"),
    "first of second segment deleted": _sql("DELETE FROM audit_events WHERE seq = 21"),
    "rehashed across the seam": _rehash_20,
    "swapped across the seam": _sql(
        "UPDATE audit_events SET seq = -1 WHERE seq = 20",
        "UPDATE audit_events SET seq = 20 WHERE seq = 21",
        "UPDATE audit_events SET seq = 21 WHERE seq = -1",
    ),
    "tail cut": _sql("DELETE FROM audit_events WHERE seq > 35"),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_parallel_equals_serial(
    db: Path, name: str, worker_runs: list[Future[VerifyResult]]
) -> None:
    """Each tampering gives one serial pass's result, with both segments run in worker processes."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_events_no_delete")
    conn.execute("DROP TRIGGER audit_events_only_erase")
    TAMPERS[name](conn)
    conn.commit()
    conn.close()
    signed = {40: "0" * 64} if name == "tail cut" else {}
    serial = sqlite_verify._segment(db, 1, None, GENESIS, signed)
    parallel = sqlite_verify.verify_file(db, 1, None, signed)
    assert parallel == serial
    assert parallel.processes == 2
    assert parallel.ok is (name == "none")
    _assert_ran_in_workers(worker_runs, 2)
    if name == "none":
        assert sum(f.result().checked for f in worker_runs) == N


def test_parallel_range_equals_serial(db: Path, worker_runs: list[Future[VerifyResult]]) -> None:
    """A sub-range split over worker processes reports the same head as a serial pass over it."""
    conn = sqlite3.connect(db)
    prev = conn.execute("SELECT hash FROM audit_events WHERE seq = 4").fetchone()[0]
    conn.close()
    serial = sqlite_verify._segment(db, 5, 33, prev, {})
    assert serial.ok and serial.checked == 29
    assert sqlite_verify.verify_file(db, 5, 33, {}) == serial
    _assert_ran_in_workers(worker_runs, 2)
    assert [f.result().checked for f in worker_runs] == [14, 15]
