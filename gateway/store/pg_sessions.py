"""PostgreSQL side of the reviewer UI sessions (`gateway.store.protocol.SessionStore`).

A mixin of `PostgresStore`. Like claims, these writes record no audit event, so they do not go
through the writer: its transactions hold the audit chain's lock, and a page view must not
queue behind decisions being chained on every replica. Each write is one statement on a pooled
connection (autocommit); ``put_session`` with ``replaces`` is one short transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.audit.chain import format_ts
from gateway.store.sqlite_sessions import SESSION_COLUMNS, session_from_row, session_row
from gateway.types import SessionRecord

_INSERT = f"INSERT INTO ui_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"  # noqa: S608
_SELECT = f"SELECT {SESSION_COLUMNS} FROM ui_sessions WHERE id_hash = $1"  # noqa: S608


class PostgresSessionsMixin:
    """Reviewer UI sessions for `PostgresStore` (see the module docstring)."""

    if TYPE_CHECKING:

        @property
        def pool(self) -> asyncpg.Pool: ...

        async def _fetch(self, sql: str, *params: Any) -> list[asyncpg.Record]: ...

    async def put_session(self, record: SessionRecord, *, replaces: str | None = None) -> None:
        """Store a new session, deleting the one keyed ``replaces`` in the same transaction."""
        row = session_row(record)
        async with self.pool.acquire() as conn, conn.transaction():
            if replaces is not None:
                await conn.execute("DELETE FROM ui_sessions WHERE id_hash = $1", replaces)
            await conn.execute(_INSERT, *row)

    async def get_session(self, id_hash: str) -> SessionRecord | None:
        rows = await self._fetch(_SELECT, id_hash)
        return session_from_row(tuple(rows[0])) if rows else None

    async def touch_session(self, id_hash: str, last_seen: datetime, expires_at: datetime) -> None:
        """Record activity; a session deleted meanwhile stays deleted (an UPDATE, not upsert)."""
        await self.pool.execute(
            "UPDATE ui_sessions SET last_seen = $1, expires_at = $2 WHERE id_hash = $3",
            format_ts(last_seen),
            format_ts(expires_at),
            id_hash,
        )

    async def delete_session(self, id_hash: str) -> None:
        await self.pool.execute("DELETE FROM ui_sessions WHERE id_hash = $1", id_hash)

    async def purge_sessions(self, now: datetime) -> int:
        """Delete every session whose ``expires_at`` is before ``now``; returns how many."""
        status: str = await self.pool.execute(
            "DELETE FROM ui_sessions WHERE expires_at < $1", format_ts(now)
        )
        return int(status.rsplit(" ", 1)[-1])  # the command tag, "DELETE <n>"
