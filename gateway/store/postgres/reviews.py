"""PostgreSQL side of the review queue: queue pages, claims, SLA expiry and escalation.

A mixin of `PostgresStore`. Writes that record an audit event run inside the store's writer
transaction (``_write``), under the chain lock, as in the SQLite store. Claims and releases
record no event, so they run in their own short transaction: the task row is locked with
``FOR UPDATE SKIP LOCKED``, and a row someone else is claiming at this very moment (on any
replica) is simply not found, which reads as "taken" rather than waiting for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from gateway.errors import Conflict, NotFound, PermissionDenied
from gateway.store import codec, sql, verdict
from gateway.store.postgres.sql import SELECT_DECISION
from gateway.store.protocol import QueueCursor
from gateway.store.tx import PostgresTx
from gateway.timefmt import format_ts
from gateway.types import (
    AuditDraft,
    Decision,
    QueueItem,
    Review,
    Status,
    TaskKind,
)

T = TypeVar("T")

_UPDATE_REVIEWED = sql.numbered(sql.UPDATE_REVIEWED)
_INSERT_REVIEW = sql.numbered(sql.INSERT_REVIEW)
_SELECT_STATUS = sql.numbered(verdict.SELECT_STATUS)
_TASKS_SQL = {
    True: sql.numbered(sql.CLOSE_DECISION_TASKS),
    False: sql.numbered(sql.RELEASE_DECISION_TASKS),
}
"""Keyed by whether the verdict is final (see `gateway.store.verdict.Verdict.tasks_sql`)."""


_TASK_COLS = ", ".join(f"t.{c}" for c in codec.TASK_COLUMNS)


_SELECT_ITEMS = (
    f"SELECT {_TASK_COLS}, t.id, t.claimed_by, t.claimed_until, "  # noqa: S608 (constants only)
    "COALESCE(t.deadline, '~'), d.approvals_needed, "
    "(SELECT COUNT(*) FROM reviews r WHERE r.decision_id = t.decision_id "
    "AND r.verdict = 'approve') "
    "FROM review_tasks t JOIN decisions d ON d.id = t.decision_id"
)


class _Params:
    """Bound parameters of one query, numbered as they are added."""

    def __init__(self, *values: Any) -> None:
        self.values: list[Any] = list(values)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _visible(groups: tuple[str, ...] | None, p: _Params) -> str:
    """SQL condition: the task names one of ``groups`` (None: every task)."""
    if groups is None:
        return ""
    if not groups:
        return " AND false"
    # Group names cannot contain quotes (policy schema), so a quoted name matches one element.
    terms = ["strpos(t.groups, " + p.add('"' + g + '"') + ") > 0" for g in groups]
    return " AND (" + " OR ".join(terms) + ")"


def _item(row: Sequence[Any]) -> QueueItem:
    n = len(codec.TASK_COLUMNS)
    task = codec.task_from_row(row[:n])
    task_id, claimed_by, claimed_until, _key, needed, approvals = row[n:]
    return QueueItem(
        task=task,
        task_id=task_id,
        claimed_by=claimed_by,
        claimed_until=codec.parse_ts_opt(claimed_until),
        approvals=approvals,
        approvals_needed=needed,
    )


async def _decision(conn: asyncpg.Connection, decision_id: str) -> Decision:
    row = tuple(await conn.fetchrow(f"{SELECT_DECISION} WHERE d.id = $1", decision_id))
    return codec.decision_from_row(row[:-1], row[-1])


class PostgresReviewsMixin:
    """Reviews for `PostgresStore` (see the module docstring)."""

    if TYPE_CHECKING:

        def _check_running(self) -> None: ...

        @property
        def pool(self) -> asyncpg.Pool: ...

        async def _fetch(self, sql: str, *params: Any) -> list[asyncpg.Record]: ...

        async def _write(self, fn: Callable[[PostgresTx], Awaitable[T]]) -> T: ...

    # -- queue reads --------------------------------------------------------------------

    async def queue_page(
        self,
        kind: TaskKind,
        *,
        viewer: str,
        now: datetime,
        groups: tuple[str, ...] | None = None,
        application: str | None = None,
        tier: str | None = None,
        after: QueueCursor | None = None,
        limit: int = 50,
    ) -> tuple[list[QueueItem], QueueCursor | None]:
        """Open tasks of ``kind`` most urgent first, skipping those leased to someone else.

        Returns the page and the cursor of the next one (None on the last page).
        """
        p = _Params(kind.value, viewer, format_ts(now))
        sql = (
            f"{_SELECT_ITEMS} WHERE t.kind = $1 AND t.closed_at IS NULL "
            "AND (t.claimed_by IS NULL OR t.claimed_by = $2 OR t.claimed_until < $3)"
        )
        sql += _visible(groups, p)
        if application:
            sql += f" AND t.application = {p.add(application)}"
        if tier:
            sql += f" AND t.tier = {p.add(tier)}"
        if after is not None:
            key, rank, task_id = p.add(after[0]), p.add(after[1]), p.add(after[2])
            sql += (
                f" AND COALESCE(t.deadline, '~') >= {key} AND (COALESCE(t.deadline, '~') > {key} "
                f"OR (t.tier_rank, t.id) > ({rank}::int, {task_id}::bigint))"
            )
        sql += f" ORDER BY COALESCE(t.deadline, '~'), t.tier_rank, t.id LIMIT {p.add(limit + 1)}"
        rows = [tuple(r) for r in await self._fetch(sql, *p.values)]
        items = [_item(r) for r in rows[:limit]]
        cursor: QueueCursor | None = None
        if len(rows) > limit:
            last = rows[limit - 1]
            n = len(codec.TASK_COLUMNS)
            cursor = (last[n + 3], last[codec.TASK_COLUMNS.index("tier_rank")], last[n])
        return items, cursor

    async def queue_counts(
        self, kind: TaskKind, *, groups: tuple[str, ...] | None = None
    ) -> dict[str, int]:
        """Open tasks of ``kind`` visible to ``groups``, per application."""
        p = _Params(kind.value)
        sql = (
            "SELECT t.application, COUNT(*) FROM review_tasks t "
            "WHERE t.kind = $1 AND t.closed_at IS NULL"
        )
        sql += _visible(groups, p) + " GROUP BY t.application"
        return {app: n for app, n in await self._fetch(sql, *p.values)}

    async def open_task(self, decision_id: str, kind: TaskKind) -> QueueItem | None:
        """The open task of ``kind`` for a decision, with its claim."""
        rows = await self._fetch(
            f"{_SELECT_ITEMS} WHERE t.decision_id = $1 AND t.kind = $2 "
            "AND t.closed_at IS NULL ORDER BY t.id LIMIT 1",
            decision_id,
            kind.value,
        )
        return _item(tuple(rows[0])) if rows else None

    # -- claims -------------------------------------------------------------------------

    async def claim_task(
        self, decision_id: str, kind: TaskKind, reviewer: str, now: datetime, until: datetime
    ) -> None:
        """Lease the open task to ``reviewer`` until ``until`` (renewing their own lease).

        Raises:
            Conflict: Someone else holds a lease that has not expired, or is taking it now.
            NotFound: The decision has no open task of ``kind``.
            PermissionDenied: ``reviewer`` already gave a verdict on the decision.
        """
        now_s, until_s = format_ts(now), format_ts(until)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id, claimed_by, claimed_until FROM review_tasks "
                "WHERE decision_id = $1 AND kind = $2 AND closed_at IS NULL "
                "FOR UPDATE SKIP LOCKED",
                decision_id,
                kind.value,
            )
            if row is None:
                exists = await conn.fetchval(
                    "SELECT 1 FROM review_tasks "
                    "WHERE decision_id = $1 AND kind = $2 AND closed_at IS NULL",
                    decision_id,
                    kind.value,
                )
                if exists is None:
                    raise NotFound("open review task for decision", decision_id)
                raise Conflict(f"decision {decision_id} is being claimed by someone else")
            # Read after the row lock: a verdict's transaction also writes this row, so one
            # committed before the lock was taken is seen here and its author gets no lease.
            if kind is TaskKind.DECISION and await conn.fetchval(
                "SELECT 1 FROM reviews WHERE decision_id = $1 AND reviewer = $2",
                decision_id,
                reviewer,
            ):
                raise PermissionDenied(
                    f"{reviewer} already gave a verdict on decision {decision_id}; "
                    "the next one must come from a different reviewer"
                )
            task_id, holder, held_until = row
            if holder not in (None, reviewer) and held_until is not None and held_until >= now_s:
                raise Conflict(f"decision {decision_id} is being reviewed by {holder}")
            await conn.execute(
                "UPDATE review_tasks SET claimed_by = $1, claimed_until = $2 WHERE id = $3",
                reviewer,
                until_s,
                task_id,
            )

    async def release_task(self, decision_id: str, kind: TaskKind, reviewer: str) -> bool:
        """Give up ``reviewer``'s lease; False when they did not hold one."""
        done = await self.pool.fetchval(
            "UPDATE review_tasks SET claimed_by = NULL, claimed_until = NULL "
            "WHERE decision_id = $1 AND kind = $2 AND closed_at IS NULL AND claimed_by = $3 "
            "RETURNING 1",
            decision_id,
            kind.value,
            reviewer,
        )
        return done is not None

    # -- SLA ----------------------------------------------------------------------------

    # -- verdicts ---------------------------------------------------------------------------

    async def record_review(
        self,
        decision_id: str,
        review: Review,
        new_status: Status,
        final_output: dict[str, object] | None,
        event: AuditDraft,
        expected: Status,
        expected_reviews: int | None = None,
    ) -> Decision:
        """Append a review and move the decision to ``new_status`` if it is still ``expected``.

        Same contract as `SQLiteStore.record_review`.

        Raises:
            Conflict: The decision's status (or number of reviews) is no longer as expected.
            NotFound: No decision has this id.
            FailedPrecondition: ``expected`` is a final status, which never changes.
        """
        self._check_running()
        write = verdict.prepare(
            decision_id, review, new_status, final_output, event, expected, expected_reviews
        )
        tasks_sql = _TASKS_SQL[write.final]

        async def apply(tx: PostgresTx) -> Any:
            conn = tx.conn
            if await conn.execute(_UPDATE_REVIEWED, *write.update) != "UPDATE 1":
                return write.refused(await conn.fetchval(_SELECT_STATUS, decision_id))
            await conn.execute(_INSERT_REVIEW, *write.insert)
            await conn.execute(tasks_sql, *write.tasks_params(tx.now))
            await tx.append([write.draft])
            tx.changed.append(decision_id)
            return await _decision(conn, decision_id)

        return await self._write(apply)
