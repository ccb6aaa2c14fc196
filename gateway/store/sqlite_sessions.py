"""SQLite side of the reviewer UI sessions (`gateway.store.protocol.SessionStore`).

A mixin of `SQLiteStore`. Writes are functions run in the store's single writer transaction
(``_write``), batched with everything else; they record no audit event. Reads use the reader
pool, which sees every committed write (WAL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.audit.chain import format_ts, parse_ts
from gateway.types import SessionRecord

T = TypeVar("T")

SESSION_COLUMNS = "id_hash, account, csrf, sso, signed_in_at, last_seen, expires_at"
_INSERT = f"INSERT INTO ui_sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_SELECT = f"SELECT {SESSION_COLUMNS} FROM ui_sessions WHERE id_hash = ?"  # noqa: S608


def session_from_row(row: Sequence[Any]) -> SessionRecord:
    """A `SessionRecord` from a row of ``ui_sessions`` (either store)."""
    id_hash, account, csrf, sso, signed_in_at, last_seen, expires_at = row
    return SessionRecord(
        id_hash=id_hash,
        user=account,
        csrf=csrf,
        sso=bool(sso),
        signed_in_at=parse_ts(signed_in_at),
        last_seen=parse_ts(last_seen),
        expires_at=parse_ts(expires_at),
    )


def session_row(record: SessionRecord) -> tuple[Any, ...]:
    """The ``ui_sessions`` values of ``record``, in `SESSION_COLUMNS` order."""
    return (
        record.id_hash,
        record.user,
        record.csrf,
        int(record.sso),
        format_ts(record.signed_in_at),
        format_ts(record.last_seen),
        format_ts(record.expires_at),
    )


class SQLiteSessionsMixin:
    """Reviewer UI sessions for `SQLiteStore` (see the module docstring)."""

    if TYPE_CHECKING:

        async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]: ...

        async def _write(self, fn: Callable[[sqlite3.Connection, str], T]) -> T: ...

    async def put_session(self, record: SessionRecord, *, replaces: str | None = None) -> None:
        """Store a new session, deleting the one keyed ``replaces`` in the same transaction."""
        row = session_row(record)

        def put(conn: sqlite3.Connection, _now: str) -> None:
            if replaces is not None:
                conn.execute("DELETE FROM ui_sessions WHERE id_hash = ?", (replaces,))
            conn.execute(_INSERT, row)

        await self._write(put)

    async def get_session(self, id_hash: str) -> SessionRecord | None:
        rows = await self._fetchall(_SELECT, (id_hash,))
        return session_from_row(rows[0]) if rows else None

    async def touch_session(self, id_hash: str, last_seen: datetime, expires_at: datetime) -> None:
        """Record activity; a session deleted meanwhile stays deleted (an UPDATE, not upsert)."""
        values = (format_ts(last_seen), format_ts(expires_at), id_hash)

        def touch(conn: sqlite3.Connection, _now: str) -> None:
            conn.execute(
                "UPDATE ui_sessions SET last_seen = ?, expires_at = ? WHERE id_hash = ?", values
            )

        await self._write(touch)

    async def delete_session(self, id_hash: str) -> None:
        def delete(conn: sqlite3.Connection, _now: str) -> None:
            conn.execute("DELETE FROM ui_sessions WHERE id_hash = ?", (id_hash,))

        await self._write(delete)

    async def purge_sessions(self, now: datetime) -> int:
        """Delete every session whose ``expires_at`` is before ``now``; returns how many."""
        cutoff = format_ts(now)

        def purge(conn: sqlite3.Connection, _now: str) -> int:
            return conn.execute("DELETE FROM ui_sessions WHERE expires_at < ?", (cutoff,)).rowcount

        return await self._write(purge)
