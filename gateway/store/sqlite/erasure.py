"""Erasure of a data subject's stored personal data in a SQLite store file.

One data key seals every decision, so destroying a key (crypto-shredding) would erase everyone.
Instead the subject's decision inputs are overwritten and their request digests blanked, with
``secure_delete`` on so SQLite zeroes the freed space, and the write-ahead log is checkpointed
and truncated so the old page images leave the disk too. The decision rows themselves (status,
outcome, reviews) stay: they are the record of what was decided. The audit chain is untouched
and still verifies.

`SQLiteErasureMixin` gives the running store's erasure (`gateway.store.erasure`) those two
steps; `erase_subject_inputs` does the same on a file with no gateway running.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from gateway.store.erasure import ERASED_INPUT
from gateway.store.tx import SQLiteTx

log = structlog.get_logger("gateway.store")


class SQLiteErasureMixin:
    """Zeroed pages and a truncated write-ahead log for `gateway.store.erasure.ErasureMixin`."""

    if TYPE_CHECKING:
        path: Path

    @asynccontextmanager
    async def _secure_delete(self, tx: SQLiteTx) -> AsyncIterator[None]:
        tx.conn.execute("PRAGMA secure_delete=ON")
        try:
            yield
        finally:
            tx.conn.execute("PRAGMA secure_delete=OFF")

    async def _after_erasure(self) -> None:
        try:
            await asyncio.to_thread(checkpoint_wal, self.path)
        except sqlite3.Error as exc:  # committed already: the old pages go at a later checkpoint
            log.warning("store.erasure_checkpoint_failed", error=str(exc))


_BATCH = 500
_BUSY_TIMEOUT_MS = 10_000


def erase_subject_inputs(path: str | Path, subject_ref: str) -> int:
    """Overwrite the input and blank the request digest of every decision about
    ``subject_ref``; returns how many rows.

    Runs in short transactions so a live gateway's writer is not held up for long. While a
    live gateway holds readers the final checkpoint may be partial; the old pages then leave
    the write-ahead log at its next checkpoint.
    """
    if not subject_ref:
        raise ValueError("erasure needs a subject reference")
    conn = sqlite3.connect(Path(path), isolation_level=None)
    total = 0
    try:
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA secure_delete=ON")
        while True:
            cur = conn.execute(
                "UPDATE decisions SET input = ?, request_digest = '' WHERE rowid IN "
                "(SELECT rowid FROM decisions WHERE subject_ref = ? "
                "AND (input != ? OR request_digest != '') LIMIT ?)",
                (ERASED_INPUT, subject_ref, ERASED_INPUT, _BATCH),
            )
            total += cur.rowcount
            if cur.rowcount < _BATCH:
                break
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return total
    finally:
        conn.close()


def checkpoint_wal(path: str | Path) -> None:
    """Copy the write-ahead log into the database file and truncate it, so page images from
    before an erasure leave the disk. Partial while readers hold old snapshots; the rest goes
    at the next checkpoint."""
    conn = sqlite3.connect(Path(path), isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
