"""Read a database file without the gateway running, for the offline audit CLI.

Uses the stdlib ``sqlite3`` in read-only mode and reads events in batches, so a chain of any
length is verified in bounded memory. Point it at a copy made with ``sqlite3 .backup`` (or at
the live file: WAL lets it read while the gateway writes).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from gateway.audit.chain import VerifyResult, verify
from gateway.store import codec
from gateway.types import AuditEvent

_BATCH = 2000


def connect_read_only(path: str | Path) -> sqlite3.Connection:
    """Open ``path`` read-only; raises FileNotFoundError when it does not exist."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no database file at {str(p)!r}")
    return sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)


def iter_audit_events_sync(
    path: str | Path, *, after_seq: int = 0, batch: int = _BATCH
) -> Iterator[AuditEvent]:
    """Every audit event with ``seq > after_seq`` in chain order, read ``batch`` rows at a time."""
    conn = connect_read_only(path)
    try:
        last = after_seq
        while True:
            rows = conn.execute(
                f"{codec.SELECT_EVENTS} WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield codec.event_from_row(row)
            last = rows[-1][0]
    finally:
        conn.close()


def verify_file(path: str | Path) -> VerifyResult:
    """Verify the whole audit chain stored in the database file at ``path``."""
    return verify(iter_audit_events_sync(path))
