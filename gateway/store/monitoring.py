"""Monitoring per model version on both databases, written once (through
`gateway.store.tx.WriteTx` and the shared reads' ``_rows``).

Counts and output histograms are upserted in the transaction of the event they count: a run of
new decisions (each dialect's ``_apply_creates`` runs `UPSERT_COUNT` / `UPSERT_OUTPUT` with its
own ``executemany`` over the rows `gateway.modelrisk.monitor.created_rows` sums for the whole
run), a final verdict (`gateway.store.reviews`) and a QA opinion (`gateway.store.qa`). No write
of its own, so no commit is added per decision.

A breach is acted on by one replica only: `record_breach` opens the breach row with a
compare-and-set (``open = 0`` -> ``1``) inside the writer's transaction, which on PostgreSQL
holds the chain lock, so the writers of all replicas take turns; the replica that finds the
breach already open writes nothing. The escalation itself is a second compare-and-set on
``models.escalated`` in the same transaction, and its audit events ride with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from gateway.audit.drafts import prepare_draft
from gateway.modelrisk.monitor import CountRow, bucket
from gateway.modelrisk.record import ModelKey
from gateway.store.tx import WriteTx
from gateway.timefmt import format_ts
from gateway.types import AuditDraft

T = TypeVar("T")

UPSERT_COUNT = (
    "INSERT INTO model_counts (backend, name, version, metric, bucket, n) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (backend, name, version, metric, bucket) "
    "DO UPDATE SET n = model_counts.n + excluded.n"
)
UPSERT_OUTPUT = (
    "INSERT INTO model_outputs (backend, name, version, field, bucket, bin, n) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (backend, name, version, field, bucket, bin) "
    "DO UPDATE SET n = model_outputs.n + excluded.n"
)
_KEY = "backend = ? AND name = ? AND version = ?"
_SUM_COUNTS = (
    "SELECT metric, CAST(SUM(n) AS BIGINT) FROM model_counts "  # noqa: S608 (constants only)
    f"WHERE {_KEY} AND bucket >= ? GROUP BY metric"
)
_SERIES = (
    "SELECT bucket, metric, n FROM model_counts "  # noqa: S608 (constants only)
    f"WHERE {_KEY} AND bucket >= ? ORDER BY bucket"
)
_HISTOGRAM = (
    "SELECT field, bin, CAST(SUM(n) AS BIGINT) FROM model_outputs "  # noqa: S608
    f"WHERE {_KEY} AND bucket >= ? AND bucket < ? GROUP BY field, bin"
)
_FIRST_OUTPUT = f"SELECT MIN(bucket) FROM model_outputs WHERE {_KEY}"  # noqa: S608
_INSERT_REFERENCE = (
    "INSERT INTO model_references "
    "(backend, name, version, since, until, set_at, set_by, histogram) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (backend, name, version) DO NOTHING"
)
_REPLACE_REFERENCE = (
    "INSERT INTO model_references "
    "(backend, name, version, since, until, set_at, set_by, histogram) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (backend, name, version) DO UPDATE SET "
    "since = excluded.since, until = excluded.until, set_at = excluded.set_at, "
    "set_by = excluded.set_by, histogram = excluded.histogram"
)
_SELECT_REFERENCE = (
    f"SELECT since, until, set_at, set_by, histogram FROM model_references WHERE {_KEY}"  # noqa: S608
)
_OPEN_BREACH = (
    "INSERT INTO model_breaches (backend, name, version, metric, open, opened_at, not_before) "
    "VALUES (?, ?, ?, ?, 1, ?, NULL) ON CONFLICT (backend, name, version, metric) "
    "DO UPDATE SET open = 1, opened_at = excluded.opened_at WHERE model_breaches.open = 0"
)
"""Open a breach unless it is open already: the compare-and-set one replica wins."""
_CLOSE_BREACH = f"UPDATE model_breaches SET open = 0 WHERE {_KEY} AND metric = ? AND open = 1"  # noqa: S608
_SELECT_BREACHES = "SELECT backend, name, version, metric, open, not_before FROM model_breaches"
_ESCALATE = (
    "UPDATE models SET escalated = 1, escalation_reason = ?, escalated_at = ? "  # noqa: S608
    f"WHERE {_KEY} AND escalated = 0"
)
_CLEAR = (
    "UPDATE models SET escalated = 0, escalation_reason = '', escalated_at = NULL "  # noqa: S608
    f"WHERE {_KEY} AND escalated = 1"
)
_RESTART_EVIDENCE = (
    "INSERT INTO model_breaches (backend, name, version, metric, open, opened_at, not_before) "
    "VALUES (?, ?, ?, ?, 0, NULL, ?) ON CONFLICT (backend, name, version, metric) "
    "DO UPDATE SET open = 0, not_before = excluded.not_before"
)


@dataclass(frozen=True, slots=True)
class ModelReference:
    """The reference window of a model version's outputs, and its histogram."""

    since: str
    until: str
    set_at: str
    set_by: str
    histogram: dict[str, dict[int, int]]
    """Output field -> bin -> count."""


@dataclass(frozen=True, slots=True)
class BreachState:
    """Where one monitored rate of one model version stands."""

    key: ModelKey
    metric: str
    open: bool
    not_before: str | None
    """The first hour whose evidence counts (after an admin cleared an escalation)."""


def _key(key: ModelKey) -> tuple[str, str, str]:
    return key.backend, key.name, key.version


class MonitoringMixin:
    """Counts, histograms, references and breaches (see the module docstring)."""

    if TYPE_CHECKING:
        _ANNOUNCE_MODEL: str | None

        async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

        async def _write(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

        async def _unchained(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

    @staticmethod
    async def _count(tx: WriteTx, rows: Sequence[CountRow]) -> None:
        """Add count increments inside a write (a verdict, a QA opinion: a row or two)."""
        for row in rows:
            await tx.execute(UPSERT_COUNT, *row)

    # -- reads ----------------------------------------------------------------------------

    async def model_counts(self, key: ModelKey, since: str) -> dict[str, int]:
        """Each metric's count from the hour ``since`` (a bucket) on."""
        rows = await self._rows(_SUM_COUNTS, (*_key(key), since))
        return {metric: int(n) for metric, n in rows}

    async def model_count_series(self, key: ModelKey, since: str) -> list[tuple[str, str, int]]:
        """``(bucket, metric, n)`` from the hour ``since`` on, oldest first."""
        rows = await self._rows(_SERIES, (*_key(key), since))
        return [(b, m, int(n)) for b, m, n in rows]

    async def model_histogram(
        self, key: ModelKey, since: str, until: str = "~"
    ) -> dict[str, dict[int, int]]:
        """Output field -> bin -> count over the hours from ``since`` up to ``until``."""
        out: dict[str, dict[int, int]] = {}
        for field, b, n in await self._rows(_HISTOGRAM, (*_key(key), since, until)):
            out.setdefault(field, {})[int(b)] = int(n)
        return out

    async def model_first_output(self, key: ModelKey) -> str | None:
        """The first hour with a counted output of ``key`` (None: none yet)."""
        rows = await self._rows(_FIRST_OUTPUT, _key(key))
        return rows[0][0] if rows and rows[0][0] is not None else None

    async def get_model_reference(self, key: ModelKey) -> ModelReference | None:
        rows = await self._rows(_SELECT_REFERENCE, _key(key))
        if not rows:
            return None
        since, until, set_at, set_by, raw = rows[0]
        hist = {
            f: {int(b): int(n) for b, n in bins.items()} for f, bins in orjson.loads(raw).items()
        }
        return ModelReference(since, until, set_at, set_by, hist)

    async def model_breach_states(self) -> list[BreachState]:
        rows = await self._rows(_SELECT_BREACHES, ())
        return [BreachState(ModelKey(b, n, v), m, bool(o), nb) for b, n, v, m, o, nb in rows]

    # -- writes ---------------------------------------------------------------------------

    async def set_model_reference(
        self, key: ModelKey, since: datetime, until: datetime, actor: str, *, replace: bool = True
    ) -> ModelReference:
        """Store the outputs of ``key`` counted from ``since`` to ``until`` (whole hours: from
        the hour ``since`` falls in) as its reference histogram (for drift). ``replace=False``
        keeps a reference already stored (several replicas choosing the lazy default at once
        then agree on the first one)."""
        since_s, until_s = format_ts(since), format_ts(until)
        # Counted by the hour: every hour that starts before ``until`` and ends after ``since``.
        hist = await self.model_histogram(key, bucket(since_s), until_s)
        raw = orjson.dumps({f: {str(b): n for b, n in bins.items()} for f, bins in hist.items()})
        statement = _REPLACE_REFERENCE if replace else _INSERT_REFERENCE

        async def store(tx: WriteTx) -> None:
            await tx.execute(statement, *_key(key), since_s, until_s, tx.now, actor, raw.decode())

        await self._unchained(store)
        stored = await self.get_model_reference(key)
        assert stored is not None  # written just above (or earlier, when not replacing)
        return stored

    async def record_breach(
        self,
        key: ModelKey,
        metric: str,
        breach: AuditDraft,
        escalation: tuple[str, AuditDraft] | None = None,
    ) -> tuple[bool, bool]:
        """Open the breach of ``metric`` on ``key`` with its audit event, unless it is open
        already; with ``escalation`` (reason, event), also mark the model version escalated
        unless it is. One transaction; ``(breach recorded, escalated now)``."""
        breach_draft = prepare_draft(breach)
        esc = None if escalation is None else (escalation[0], prepare_draft(escalation[1]))
        announce = self._ANNOUNCE_MODEL

        async def act(tx: WriteTx) -> tuple[bool, bool]:
            if not await tx.execute(_OPEN_BREACH, *_key(key), metric, tx.now):
                return False, False
            await tx.append([breach_draft])
            if esc is None:
                return True, False
            reason, draft = esc
            if not await tx.execute(_ESCALATE, reason, tx.now, *_key(key)):
                return True, False  # escalated already, or not in the inventory
            await tx.append([draft])
            if announce is not None:
                await tx.execute(announce, str(key))
            return True, True

        result: tuple[bool, bool] = await self._write(act)
        return result

    async def close_breach(self, key: ModelKey, metric: str) -> bool:
        """The rate is back under its threshold: a later breach is a new one."""

        async def close(tx: WriteTx) -> bool:
            return await tx.execute(_CLOSE_BREACH, *_key(key), metric) > 0

        return await self._unchained(close)

    async def clear_model_escalation(
        self, key: ModelKey, metrics: Sequence[str], not_before: str, event: AuditDraft
    ) -> bool:
        """Clear ``key``'s escalation with ``event`` if it is escalated; its breaches of
        ``metrics`` close and count evidence from the hour ``not_before`` on. False: the
        version was not escalated (nothing written)."""
        draft = prepare_draft(event)
        announce = self._ANNOUNCE_MODEL

        async def clear(tx: WriteTx) -> bool:
            if not await tx.execute(_CLEAR, *_key(key)):
                return False
            for metric in metrics:
                await tx.execute(_RESTART_EVIDENCE, *_key(key), metric, not_before)
            await tx.append([draft])
            if announce is not None:
                await tx.execute(announce, str(key))
            return True

        result: bool = await self._write(clear)
        return result
