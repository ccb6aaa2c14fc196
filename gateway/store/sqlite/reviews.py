"""SQLite side of the review queue: queue pages, claims, SLA expiry and escalation.

A mixin of `SQLiteStore`: every write here is one function run inside the store's single
writer transaction (``_write``), so it is batched with everything else and its audit events are
chained in the same transaction as the change they record.

The queue is read with keyset pagination over the partial index ``review_tasks_queue``
(``kind, ifnull(deadline, '~'), tier_rank, id`` over open tasks): a page costs the same at the
first item and at the 100,000th. Group visibility is checked per row with ``instr`` on the JSON
group list (group names cannot contain quotes, see the policy schema), which keeps the walk on
the index instead of expanding the list with ``json_each``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.errors import Conflict, NotFound, PermissionDenied
from gateway.store import codec, sql, verdict
from gateway.store.protocol import QueueCursor
from gateway.store.tx import SQLiteTx
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


_TASK_COLS = ", ".join(f"t.{c}" for c in codec.TASK_COLUMNS)


_SELECT_ITEMS = (
    f"SELECT {_TASK_COLS}, t.id, t.claimed_by, t.claimed_until, "  # noqa: S608 (constants only)
    "ifnull(t.deadline, '~'), d.approvals_needed, "
    "(SELECT COUNT(*) FROM reviews r WHERE r.decision_id = t.decision_id "
    "AND r.verdict = 'approve') "
    "FROM review_tasks t JOIN decisions d ON d.id = t.decision_id"
)


def _visible(groups: tuple[str, ...] | None, params: list[Any]) -> str:
    """SQL condition: the task names one of ``groups`` (None: every task)."""
    if groups is None:
        return ""
    if not groups:
        return " AND 0"
    params.extend(f'"{g}"' for g in groups)
    return " AND (" + " OR ".join(["instr(t.groups, ?) > 0"] * len(groups)) + ")"


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


def _decision(conn: sqlite3.Connection, decision_id: str) -> Decision:
    row = conn.execute(f"{codec.SELECT_DECISION} WHERE d.id = ?", (decision_id,)).fetchone()
    return codec.decision_from_row(row[:-1], row[-1])


def _already_reviewed(reviewer: str, decision_id: str) -> PermissionDenied:
    return PermissionDenied(
        f"{reviewer} already gave a verdict on decision {decision_id}; "
        "the next one must come from a different reviewer"
    )


class SQLiteReviewsMixin:
    """Reviews for `SQLiteStore` (see the module docstring)."""

    if TYPE_CHECKING:

        def _check_running(self) -> None: ...

        async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]: ...

        async def _write(self, fn: Callable[[SQLiteTx], Awaitable[T]]) -> T: ...

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
        params: list[Any] = [kind.value, viewer, format_ts(now)]
        sql = (
            f"{_SELECT_ITEMS} WHERE t.kind = ? AND t.closed_at IS NULL "
            "AND (t.claimed_by IS NULL OR t.claimed_by = ? OR t.claimed_until < ?)"
        )
        sql += _visible(groups, params)
        if application:
            sql += " AND t.application = ?"
            params.append(application)
        if tier:
            sql += " AND t.tier = ?"
            params.append(tier)
        if after is not None:
            # Spelled out so the first term is a range on the index (a row-value comparison
            # alone is not, and a deep page would scan every item before it).
            sql += (
                " AND ifnull(t.deadline, '~') >= ? AND (ifnull(t.deadline, '~') > ? "
                "OR (t.tier_rank, t.id) > (?, ?))"
            )
            params.extend((after[0], *after))
        sql += " ORDER BY ifnull(t.deadline, '~'), t.tier_rank, t.id LIMIT ?"
        params.append(limit + 1)
        rows = await self._fetchall(sql, params)
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
        params: list[Any] = [kind.value]
        sql = (
            "SELECT t.application, COUNT(*) FROM review_tasks t "
            "WHERE t.kind = ? AND t.closed_at IS NULL"
        )
        sql += _visible(groups, params) + " GROUP BY t.application"
        rows = await self._fetchall(sql, params)
        return {app: n for app, n in rows}

    async def open_task(self, decision_id: str, kind: TaskKind) -> QueueItem | None:
        """The open task of ``kind`` for a decision, with its claim."""
        rows = await self._fetchall(
            f"{_SELECT_ITEMS} WHERE t.decision_id = ? AND t.kind = ? AND t.closed_at IS NULL "
            "ORDER BY t.id LIMIT 1",
            (decision_id, kind.value),
        )
        return _item(rows[0]) if rows else None

    # -- claims -------------------------------------------------------------------------

    async def claim_task(
        self, decision_id: str, kind: TaskKind, reviewer: str, now: datetime, until: datetime
    ) -> None:
        """Lease the open task to ``reviewer`` until ``until`` (renewing their own lease).

        Raises:
            Conflict: Someone else holds a lease that has not expired.
            NotFound: The decision has no open task of ``kind``.
            PermissionDenied: ``reviewer`` already gave a verdict on the decision.
        """
        now_s, until_s = format_ts(now), format_ts(until)

        async def claim(tx: SQLiteTx) -> Any:
            conn = tx.conn
            row = conn.execute(
                "SELECT id, claimed_by, claimed_until FROM review_tasks "
                "WHERE decision_id = ? AND kind = ? AND closed_at IS NULL",
                (decision_id, kind.value),
            ).fetchone()
            if row is None:
                return NotFound("open review task for decision", decision_id)
            # In the same transaction as the lease, so a verdict committed just before cannot
            # be followed by its author's claim (it would keep the next reviewer out).
            reviewed = conn.execute(
                "SELECT 1 FROM reviews WHERE decision_id = ? AND reviewer = ?",
                (decision_id, reviewer),
            ).fetchone()
            if kind is TaskKind.DECISION and reviewed:
                return _already_reviewed(reviewer, decision_id)
            task_id, holder, held_until = row
            if holder not in (None, reviewer) and held_until is not None and held_until >= now_s:
                return Conflict(f"decision {decision_id} is being reviewed by {holder}")
            conn.execute(
                "UPDATE review_tasks SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                (reviewer, until_s, task_id),
            )
            return None

        await self._write(claim)

    async def release_task(self, decision_id: str, kind: TaskKind, reviewer: str) -> bool:
        """Give up ``reviewer``'s lease; False when they did not hold one."""

        async def release(tx: SQLiteTx) -> bool:
            conn = tx.conn
            cur = conn.execute(
                "UPDATE review_tasks SET claimed_by = NULL, claimed_until = NULL "
                "WHERE decision_id = ? AND kind = ? AND closed_at IS NULL AND claimed_by = ?",
                (decision_id, kind.value, reviewer),
            )
            return cur.rowcount > 0

        return await self._write(release)

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

        With ``expected_reviews``, the decision must also still have exactly that many reviews:
        two first approvals given at once must not both count as the first. A verdict that
        leaves the decision open releases its claim, so a second reviewer can take it.

        ``updated_at`` becomes ``review.at``. When ``new_status`` is final, the decision's open
        DECISION tasks are closed.

        Raises:
            Conflict: The decision's status is no longer ``expected``.
            NotFound: No decision has this id.
            FailedPrecondition: ``expected`` is a final status, which never changes.
        """
        self._check_running()
        write = verdict.prepare(
            decision_id, review, new_status, final_output, event, expected, expected_reviews
        )

        async def apply(tx: SQLiteTx) -> Any:
            conn = tx.conn
            if conn.execute(sql.UPDATE_REVIEWED, write.update).rowcount != 1:
                row = conn.execute(verdict.SELECT_STATUS, (decision_id,)).fetchone()
                return write.refused(None if row is None else row[0])
            conn.execute(sql.INSERT_REVIEW, write.insert)
            conn.execute(write.tasks_sql, write.tasks_params(tx.now))
            await tx.append([write.draft])
            return _decision(conn, decision_id)

        result: Decision = await self._write(apply)
        return result
