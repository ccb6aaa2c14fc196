"""One write transaction of the group-commit writer, as the code that writes inside it sees it.

The writer (`gateway.store.writer`) opens the transaction, reads the chain head under the write
lock and hands a `Tx` to every job of the batch in turn. A job writes through ``tx.conn``,
appends audit events with ``tx.append`` (which chains them after ``tx.head``), and names the
decisions other replicas must hear about in ``tx.changed``. The writer commits, or undoes a job
back to its savepoint (restoring ``head`` and ``changed`` with `Tx.mark` / `Tx.undo`).

Both offer the same small API (`WriteTx`: ``execute``, ``fetchrow``, ``append``, statements in
``?`` style), so a write that is the same SQL on both databases is written once. They differ in
how rows reach the database: `SQLiteTx` calls the stdlib ``sqlite3`` and never suspends (its
whole batch runs on the writer thread, see `gateway.store.writer.drive`), `PostgresTx` awaits
asyncpg. A write that differs by database uses ``tx.conn`` directly.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from gateway.audit.drafts import EventRow, PreparedDraft, chain_rows
from gateway.store import merkle, sql

if TYPE_CHECKING:
    from asyncpg import Connection as PgConnection
else:
    PgConnection = object  # the driver is not loaded by SQLite-only deployments

C = TypeVar("C")

_SQLITE_INSERT_EVENT = sql.INSERT_EVENT
_POSTGRES_INSERT_EVENT = sql.numbered(sql.INSERT_EVENT)
_numbered = functools.lru_cache(maxsize=64)(sql.numbered)
"""`sql.numbered` of the statements written once for both databases, converted once each."""


class WriteTx(Protocol):
    """What a write written once for both databases uses (statements in ``?`` style)."""

    now: str
    changed: list[str]

    async def execute(self, statement: str, *params: Any) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def fetchrow(self, statement: str, *params: Any) -> Sequence[Any] | None:
        """The first row of one query, or None."""
        ...

    async def append(self, drafts: Sequence[PreparedDraft]) -> None:
        """Chain and insert audit events after the current head."""
        ...


@dataclass(slots=True)
class Tx(Generic[C]):
    """The connection, commit time and chain position of the transaction in progress."""

    conn: C
    now: str
    """Commit time, formatted (`gateway.timefmt.format_ts`): the ts of events without one."""
    head: tuple[int, str]
    """``(seq, hash)`` of the last event, including those appended in this transaction."""
    changed: list[str] = field(default_factory=list)
    """Decision ids to announce to other replicas when this transaction commits."""

    def chain(self, drafts: Sequence[PreparedDraft]) -> list[EventRow]:
        """Rows for ``drafts`` chained after the head, which moves past them."""
        rows, self.head = chain_rows(drafts, self.head, self.now)
        return rows

    def mark(self) -> tuple[tuple[int, str], int]:
        """What `undo` goes back to: taken at a savepoint."""
        return self.head, len(self.changed)

    def undo(self, mark: tuple[tuple[int, str], int]) -> None:
        """Forget what was appended since ``mark`` (its savepoint was rolled back)."""
        self.head, n = mark
        del self.changed[n:]


class SQLiteTx(Tx[sqlite3.Connection]):
    """A transaction on the SQLite writer thread."""

    __slots__ = ()

    async def execute(self, statement: str, *params: Any) -> int:
        """Run one statement (never suspends); the number of rows it changed."""
        return self.conn.execute(statement, params).rowcount

    async def fetchrow(self, statement: str, *params: Any) -> Sequence[Any] | None:
        """The first row of one query, or None (never suspends)."""
        row: Sequence[Any] | None = self.conn.execute(statement, params).fetchone()
        return row

    async def append(self, drafts: Sequence[PreparedDraft]) -> None:
        """Chain and insert audit events after the current head (never suspends)."""
        if drafts:
            head = self.head
            rows = self.chain(drafts)
            self.conn.executemany(_SQLITE_INSERT_EVENT, rows)
            merkle.append_sqlite(self.conn, head, rows)


class PostgresTx(Tx[PgConnection]):
    """A transaction on one pooled asyncpg connection."""

    __slots__ = ()

    async def execute(self, statement: str, *params: Any) -> int:
        """Run one ``?``-style statement; the number of rows it changed."""
        status: str = await self.conn.execute(_numbered(statement), *params)
        return int(status.rsplit(" ", 1)[-1])  # "UPDATE 2", "INSERT 0 1"

    async def fetchrow(self, statement: str, *params: Any) -> Sequence[Any] | None:
        """The first row of one ``?``-style query, or None."""
        row = await self.conn.fetchrow(_numbered(statement), *params)
        return None if row is None else tuple(row)

    async def append(self, drafts: Sequence[PreparedDraft]) -> None:
        """Chain and insert audit events after the current head."""
        if drafts:
            head = self.head
            rows = self.chain(drafts)
            await self.conn.executemany(_POSTGRES_INSERT_EVENT, rows)
            await merkle.append_postgres(self.conn, head, rows)
