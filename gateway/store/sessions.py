"""Reviewer UI sessions, written once for both databases.

A session write records no audit event, so it needs no place in the audit chain: it runs
through the store's `_unchained` (SQLite: its one writer, the only connection that may write;
PostgreSQL: a short transaction of its own, outside the chain lock).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.store.sql import insert
from gateway.store.tx import WriteTx
from gateway.timefmt import format_ts, parse_ts
from gateway.types import SessionRecord

T = TypeVar("T")

SESSION_COLUMNS = ("id_hash", "account", "csrf", "sso", "signed_in_at", "last_seen", "expires_at")
_INSERT = insert("ui_sessions", SESSION_COLUMNS)
_SELECT = f"SELECT {', '.join(SESSION_COLUMNS)} FROM ui_sessions WHERE id_hash = ?"  # noqa: S608
END_ACCOUNT_SESSIONS = "DELETE FROM ui_sessions WHERE account = ?"
"""Every session of one account, deleted inside the transaction that disables it
(`gateway.store.accounts.AccountsMixin.change_account`)."""


def session_from_row(row: Sequence[Any]) -> SessionRecord:
    """A `SessionRecord` from a row of ``ui_sessions``."""
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


class SessionsMixin:
    """`gateway.store.protocol.SessionStore` for both stores (see the module docstring)."""

    if TYPE_CHECKING:

        async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

        async def _unchained(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

    async def put_session(self, record: SessionRecord, *, replaces: str | None = None) -> None:
        """Store a new session, deleting the one keyed ``replaces`` in the same transaction."""
        row = session_row(record)

        async def put(tx: WriteTx) -> None:
            if replaces is not None:
                await tx.execute("DELETE FROM ui_sessions WHERE id_hash = ?", replaces)
            await tx.execute(_INSERT, *row)

        await self._unchained(put)

    async def get_session(self, id_hash: str) -> SessionRecord | None:
        rows = await self._rows(_SELECT, (id_hash,))
        return session_from_row(tuple(rows[0])) if rows else None

    async def touch_session(self, id_hash: str, last_seen: datetime, expires_at: datetime) -> None:
        """Record activity; a session deleted meanwhile stays deleted (an UPDATE, not upsert)."""
        values = (format_ts(last_seen), format_ts(expires_at), id_hash)

        async def touch(tx: WriteTx) -> None:
            await tx.execute(
                "UPDATE ui_sessions SET last_seen = ?, expires_at = ? WHERE id_hash = ?", *values
            )

        await self._unchained(touch)

    async def delete_session(self, id_hash: str) -> None:
        async def delete(tx: WriteTx) -> None:
            await tx.execute("DELETE FROM ui_sessions WHERE id_hash = ?", id_hash)

        await self._unchained(delete)

    async def purge_sessions(self, now: datetime) -> int:
        """Delete every session whose ``expires_at`` is before ``now``; returns how many."""
        cutoff = format_ts(now)

        async def purge(tx: WriteTx) -> int:
            return await tx.execute("DELETE FROM ui_sessions WHERE expires_at < ?", cutoff)

        return await self._unchained(purge)
