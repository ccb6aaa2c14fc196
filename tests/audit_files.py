"""Reads of a SQLite database file's audit events for tests: straight from the file, with no
store running."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

from gateway.audit.chain import VerifyResult
from gateway.store import codec
from gateway.store.sqlite.verify import connect_read_only
from gateway.store.sqlite.verify import verify_file as verify_range
from gateway.types import AuditEvent


def iter_audit_events(
    path: str | Path, *, after_seq: int = 0, batch: int = 2000
) -> Iterator[AuditEvent]:
    """Every audit event with ``seq > after_seq`` in chain order, read ``batch`` rows at a time."""
    with closing(connect_read_only(path)) as conn:
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


def verify_file(path: str | Path) -> VerifyResult:
    """Verify the whole audit chain stored in the database file at ``path``."""
    return verify_range(Path(path), 1, None, {})
