"""Read the audit trail of a PostgreSQL database without a gateway, for the offline audit CLI.

An auditor points it at the primary, a replica or a restored backup, with a role that may only
``SELECT`` from ``audit_events`` and ``audit_checkpoints`` (and ``decisions``, for the query
filters on decisions). Everything runs on one connection inside one ``REPEATABLE READ READ
ONLY`` transaction: the server refuses any write, no lock is taken beyond what reading takes
(never the writers' chain lock), and every page and every checkpoint comes from one snapshot,
so a chain the gateway keeps appending to verifies as of one moment. The reading itself, page
by page, is `gateway.store.postgres.audit.PostgresAuditLog`'s.

The CLI is synchronous and the driver is not: each call runs on an event loop of its own,
and the iterators fetch a page per step, so memory stays bounded however long the chain.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.checkpoints import Checkpoint
from gateway.audit.query import ChainReport, EventFilter
from gateway.errors import InvalidInput
from gateway.policy.versions import PolicyVersion
from gateway.store import codec, sql
from gateway.store.policies import SELECT_POLICY_VERSION, policy_version
from gateway.store.postgres.audit import PostgresAuditLog
from gateway.store.sqlite.audit import BATCH
from gateway.types import AuditEvent

T = TypeVar("T")
FIELD = "--store"
"""The CLI flag (setting ``store``) that errors here name."""
CONNECT_TIMEOUT = 15.0
GRANTS = (
    "the role needs USAGE on the schema, SELECT on audit_events and audit_checkpoints, "
    "and on decisions for the query filters on decisions (on policy_versions for the "
    "policy texts; on audit_merkle, audit_timestamps, decisions and models for proofs and "
    "evidence packs)"
)


def describe(dsn: str) -> str:
    """``dsn`` without its password, fit for an error message."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the given URL"
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


class ReadOnlyTrail:
    """One connection inside one read-only snapshot: a `pg_audit.TrailDatabase`."""

    def __init__(self, dsn: str, conn: Any, tx: Any) -> None:
        self.dsn = dsn
        self._conn = conn
        self._tx = tx

    @classmethod
    async def open(cls, dsn: str) -> ReadOnlyTrail:
        """Connect and begin the snapshot.

        Raises:
            InvalidInput: No connection could be made (field ``--store``).
        """
        try:
            conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
        except (
            OSError,
            TimeoutError,
            ValueError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ) as exc:
            raise InvalidInput(FIELD, f"cannot connect to {describe(dsn)}: {exc}") from None
        try:
            tx = conn.transaction(isolation="repeatable_read", readonly=True)
            await tx.start()
        except BaseException:
            await conn.close()
            raise
        return cls(dsn, conn, tx)

    @property
    def pool(self) -> Any:
        return self._conn

    async def audit_events_for(self, decision_id: str) -> list[AuditEvent]:
        rows = await self._conn.fetch(
            f"{codec.SELECT_EVENTS} WHERE decision_id = $1 ORDER BY seq", decision_id
        )
        return [codec.event_from_row(tuple(r)) for r in rows]

    async def policy_version(self, digest: str) -> PolicyVersion | None:
        if await self._conn.fetchval("SELECT to_regclass('policy_versions')") is None:
            return None
        row = await self._conn.fetchrow(sql.numbered(SELECT_POLICY_VERSION), digest)
        return None if row is None else policy_version(tuple(row))

    async def close(self) -> None:
        try:
            await self._tx.rollback()  # nothing was written; ends the snapshot
        finally:
            await self._conn.close()


class _Session:
    """A `PostgresAuditLog` on a `ReadOnlyTrail`, driven from synchronous code."""

    def __init__(self, dsn: str, public_key: Ed25519PublicKey | None) -> None:
        self._dsn = dsn
        self._runner = asyncio.Runner()
        try:
            self.db = self.run(ReadOnlyTrail.open(dsn))
        except BaseException:
            self._runner.close()
            raise
        self.log = PostgresAuditLog(self.db, public_key)

    def run(self, aw: Awaitable[T]) -> T:
        """Await ``aw``; database errors become `InvalidInput` naming ``--store``."""

        async def call() -> T:
            return await aw

        try:
            return self._runner.run(call())
        except asyncpg.InsufficientPrivilegeError as exc:
            raise InvalidInput(FIELD, f"{describe(self._dsn)}: {exc} ({GRANTS})") from None
        except asyncpg.UndefinedTableError as exc:
            raise InvalidInput(
                FIELD,
                f"{describe(self._dsn)}: no audit trail there ({exc}; wrong database or "
                "search_path?)",
            ) from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise InvalidInput(FIELD, f"{describe(self._dsn)}: {exc}") from None

    def close(self) -> None:
        try:
            self._runner.run(self.db.close())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # the connection is gone already; nothing was written on it
        finally:
            self._runner.close()


@contextmanager
def _session(dsn: str, public_key: Ed25519PublicKey | None = None) -> Iterator[_Session]:
    s = _Session(dsn, public_key)
    try:
        yield s
    finally:
        s.close()


async def _take(events: AsyncIterator[AuditEvent], n: int) -> list[AuditEvent]:
    out: list[AuditEvent] = []
    async for ev in events:
        out.append(ev)
        if len(out) >= n:
            break
    return out


class PostgresTrailReader:
    """The audit trail of the PostgreSQL database at ``dsn``, read-only, for the CLI.

    Each call opens its own connection and snapshot and closes it when done (for an
    iterator: when it is exhausted or closed).
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def query(self, flt: EventFilter, limit: int) -> Iterator[AuditEvent]:
        """Matching events in the filter's order, at most ``limit`` (0: all)."""
        flt.validate()
        with _session(self.dsn) as s:
            after: int | None = None
            n = 0
            while True:
                size = min(BATCH, limit - n) if limit else BATCH
                page = s.run(s.log.query(flt, after, size))
                yield from page
                n += len(page)
                if len(page) < size or (limit and n >= limit):
                    return
                after = page[-1].seq

    def trail(self, decision_id: str) -> list[AuditEvent]:
        with _session(self.dsn) as s:
            return s.run(s.log.trail(decision_id))

    def export(self, first: int, last: int | None) -> Iterator[AuditEvent]:
        """Events ``first..last`` in chain order."""
        with _session(self.dsn) as s:
            events = s.log.export(first, last)
            try:
                while page := s.run(_take(events, BATCH)):
                    yield from page
            finally:
                if isinstance(events, AsyncGenerator):
                    s.run(events.aclose())

    def policy_version(self, digest: str) -> PolicyVersion | None:
        """The stored policy version ``digest``; None also in a database migrated before
        versions were kept."""
        with _session(self.dsn) as s:
            return s.run(s.db.policy_version(digest))

    def latest_checkpoint(self) -> Checkpoint | None:
        with _session(self.dsn) as s:
            return s.run(s.log.latest_checkpoint())

    def verify(
        self, public_key: Ed25519PublicKey | None, extra: tuple[Checkpoint, ...] = ()
    ) -> ChainReport:
        """The whole chain, and every stored checkpoint and ``extra`` when keyed.

        Raises:
            CheckpointError: A checkpoint's signature does not verify with ``public_key``.
            InvalidInput: The database cannot be read (field ``--store``).
        """
        with _session(self.dsn, public_key) as s:
            return s.run(s.log.verify(1, None, extra))


def on_snapshot(dsn: str, fn: Callable[[PostgresAuditLog], Awaitable[T]]) -> T:
    """``fn`` awaited on the audit trail at ``dsn`` inside one read-only snapshot (proofs and
    evidence packs, for the CLI).

    Raises:
        InvalidInput: The database cannot be read (field ``--store``).
    """
    with _session(dsn) as s:
        return s.run(fn(s.log))
