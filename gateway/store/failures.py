"""Which driver errors mean the store cannot commit, and what the caller is told about them.

A full disk, a database that is down or restarting, or a connection that drops are not bugs of
the gateway: the caller should hear UNAVAILABLE, know whether its decision was recorded, and
retry with the same idempotency key. Both stores classify through this one module.

Two kinds of failure. *Down*: the store refused the write or could not be reached, so nothing
was written (SQLite rolls a transaction back on SQLITE_FULL; PostgreSQL never saw a COMMIT).
*Lost*: the file or the connection broke mid-operation; before COMMIT that is still "nothing
was written", but while COMMIT was under way the store may have committed (PostgreSQL can commit
and lose the connection before saying so), so the caller is told the outcome is unknown. A batch
lost at COMMIT is not replayed either: it may stand already.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from enum import Enum

import structlog

from gateway.errors import OutcomeUnknown, StoreUnavailable

log = structlog.get_logger("gateway.store")


class _Kind(Enum):
    DOWN = "down"
    LOST = "lost"


# Primary result codes (https://www.sqlite.org/rescode.html): BUSY, LOCKED, NOMEM, READONLY,
# FULL, CANTOPEN, PROTOCOL leave the database as it was; IOERR is a read or write that failed.
_SQLITE_DOWN = frozenset({5, 6, 7, 8, 13, 14, 15})
_SQLITE_IOERR = 10


def _kind(exc: BaseException) -> _Kind | None:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if not isinstance(code, int):
            return None
        if code & 0xFF == _SQLITE_IOERR:
            return _Kind.LOST
        return _Kind.DOWN if code & 0xFF in _SQLITE_DOWN else None
    # Looked up, not imported: a SQLite-only deployment never loads the PostgreSQL driver.
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is not None:
        pg = asyncpg.exceptions
        if isinstance(
            exc, pg.PostgresConnectionError | pg.AdminShutdownError | pg.CrashShutdownError
        ):
            return _Kind.LOST
        if isinstance(exc, pg.InterfaceError):  # also raised for misuse, which is a bug
            return _Kind.LOST if "closed" in str(exc) else None
        if isinstance(
            exc,
            pg.OperatorInterventionError  # shutting down, starting up, statement cancelled
            | pg.InsufficientResourcesError  # disk full, out of memory, too many connections
            | pg.ReadOnlySQLTransactionError  # a standby after a failover
            | pg.TransactionRollbackError,  # serialization failure or deadlock: rolled back
        ):
            return _Kind.DOWN
    if isinstance(exc, OSError):  # refused, reset or timed out connections; file handles
        return _Kind.LOST
    return None


class LostAtCommit(Exception):
    """Outcome of every job of a batch whose COMMIT broke off; see the module docstring."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def failed_batch(exc: Exception, *, committing: bool) -> Exception:
    """What a batch that raised ``exc`` answers its jobs: ``exc``, or `LostAtCommit` when it
    broke off during COMMIT (then the batch must not be replayed)."""
    if committing and _kind(exc) is _Kind.LOST:
        return LostAtCommit(exc)
    return exc


def for_caller(outcome: BaseException, what: str) -> BaseException:
    """The error a writer's caller gets for a failed job: `OutcomeUnknown` or `StoreUnavailable`
    (naming ``what`` was or may have been recorded) for store failures, else ``outcome``."""
    if isinstance(outcome, LostAtCommit):
        _warn("store.commit_outcome_unknown", outcome.cause)
        unknown = OutcomeUnknown(what)
        unknown.__cause__ = outcome.cause
        return unknown
    if _kind(outcome) is None:
        return outcome
    _warn("store.unavailable", outcome)
    down = StoreUnavailable(what)
    down.__cause__ = outcome
    return down


def check_read(exc: BaseException) -> None:
    """Raise `StoreUnavailable` from ``exc`` when a read failed because the store is down."""
    if _kind(exc) is not None:
        _warn("store.unavailable", exc)
        raise StoreUnavailable(
            "nothing",
            "storage unavailable: nothing was recorded; retry later with the same idempotency key",
        ) from exc


class _Throttle:
    """At most one warning a second: a full disk under load fails every write, and the log
    must not fill whatever space is left (it often shares the disk)."""

    def __init__(self, every: float = 1.0) -> None:
        self._every = every
        self._last = -every
        self._suppressed = 0

    def warn(self, event: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            self._suppressed += 1
            return
        log.warning(event, error=f"{type(exc).__name__}: {exc}", suppressed=self._suppressed)
        self._last, self._suppressed = now, 0


_warn = _Throttle().warn
