"""The review queue on both databases: queue pages, claims and verdicts, written once.

Reads use the store's readers (`_rows`, ``?`` style). The queue is read with keyset pagination
over the partial index ``review_tasks_queue`` (``kind``, the deadline key, ``tier_rank``, ``id``
over open tasks), so a page costs the same at the first item and at the 100,000th. The deadline
key is spelled by each store as its index spells it (`_DEADLINE_ORDER`). Group visibility is
checked per row with a substring test on the JSON group list (group names cannot contain quotes,
see the policy schema), which keeps the walk on the index instead of expanding the list.

Maker-checker: nobody is offered, or gets a lease on, a decision requested for them
(``requested_by``, compared ignoring case and surrounding spaces as `gateway.core.reviews`
does). The queue filters on the joined decision row, which leaves the walk on the queue index
as it is; the claim checks it inside the claim's own transaction.

Claims and releases record no audit event, so they run through `_unchained`: on SQLite the one
writer, on PostgreSQL a short transaction of their own where the task row is locked with
``FOR UPDATE SKIP LOCKED`` (`_SKIP_LOCKED`): a row someone else is claiming at this very moment,
on any replica, is simply not found, which reads as "taken" rather than waiting for them.
Verdicts run in the writer's transaction, chained with their audit event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from gateway.errors import Conflict, NotFound, PermissionDenied
from gateway.modelrisk import monitor
from gateway.store import codec, outbox, sql, verdict
from gateway.store.monitoring import UPSERT_COUNT
from gateway.store.protocol import QueueCursor
from gateway.store.reads import decision
from gateway.store.tx import WriteTx
from gateway.timefmt import format_ts
from gateway.types import AuditDraft, Decision, QueueItem, Review, Status, TaskKind

T = TypeVar("T")

_TASK_COLS = ", ".join(f"t.{c}" for c in codec.TASK_COLUMNS)
_N = len(codec.TASK_COLUMNS)
_RANK = codec.TASK_COLUMNS.index("tier_rank")

_OPEN_TASK = (
    "SELECT id, claimed_by, claimed_until FROM review_tasks "
    "WHERE decision_id = ? AND kind = ? AND closed_at IS NULL"
)
_REVIEWED_BY = "SELECT 1 FROM reviews WHERE decision_id = ? AND LOWER(reviewer) = LOWER(?)"
"""The reviewer gave a verdict already (names compared as `gateway.core.reviews` does)."""
_NOT_REQUESTER = " AND LOWER(TRIM(d.requested_by)) <> LOWER(TRIM(?))"
"""Maker-checker, as a condition on the joined decision ``d``: not requested for the viewer."""
_REQUESTED_BY = (
    "SELECT 1 FROM decisions WHERE id = ? AND LOWER(TRIM(requested_by)) = LOWER(TRIM(?))"
)
_DISABLED = "SELECT 1 FROM accounts WHERE name = ? AND disabled = 1"
"""The claimant's stored account is disabled (read in the claim's transaction: a claim that
passed the UI's check just before the account was disabled must not lease the item)."""
_LEASE = "UPDATE review_tasks SET claimed_by = ?, claimed_until = ? WHERE id = ?"
_RELEASE = (
    "UPDATE review_tasks SET claimed_by = NULL, claimed_until = NULL "
    "WHERE decision_id = ? AND kind = ? AND closed_at IS NULL AND claimed_by = ?"
)


def _item(row: Sequence[Any]) -> QueueItem:
    task = codec.task_from_row(tuple(row[:_N]))
    task_id, claimed_by, claimed_until, _key, needed, verdicts = row[_N:]
    return QueueItem(
        task=task,
        task_id=task_id,
        claimed_by=claimed_by,
        claimed_until=codec.parse_ts_opt(claimed_until),
        # Verdicts given so far, of any kind: how many approve would tell a blind tier's
        # next reviewer what the earlier ones said.
        verdicts=verdicts,
        approvals_needed=needed,
    )


class ReviewsMixin:
    """`queue_page`, `queue_counts`, `open_task`, `claim_task`, `release_task` and
    `record_review` of `gateway.store.protocol.ReviewStore` (see the module docstring)."""

    _SELECT_DECISION: ClassVar[str]
    _DEADLINE_ORDER: ClassVar[str]
    """An open task ``t``'s deadline as a sort key, missing deadlines last."""
    _FIND_TEXT: ClassVar[str]
    """The function giving the 1-based position of a substring (0: absent)."""
    _SKIP_LOCKED: ClassVar[str]
    """Appended to the claim's row read: lock the row, or treat it as taken if locked."""

    if TYPE_CHECKING:

        def _check_running(self) -> None: ...

        async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

        async def _write(self, fn: Callable[[Any], Awaitable[T]]) -> T: ...

        async def _unchained(self, fn: Callable[[Any], Awaitable[T]]) -> T: ...

    @property
    def _select_items(self) -> str:
        return (
            f"SELECT {_TASK_COLS}, t.id, t.claimed_by, t.claimed_until, "  # noqa: S608 (constants)
            f"{self._DEADLINE_ORDER}, d.approvals_needed, "
            "(SELECT COUNT(*) FROM reviews r WHERE r.decision_id = t.decision_id) "
            "FROM review_tasks t JOIN decisions d ON d.id = t.decision_id"
        )

    def _visible(self, groups: tuple[str, ...] | None, params: list[Any]) -> str:
        """SQL condition: the task names one of ``groups`` (None: every task)."""
        if groups is None:
            return ""
        if not groups:
            return " AND 1 = 0"
        params.extend(f'"{g}"' for g in groups)
        term = f"{self._FIND_TEXT}(t.groups, ?) > 0"
        return " AND (" + " OR ".join([term] * len(groups)) + ")"

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
        key = self._DEADLINE_ORDER
        params: list[Any] = [kind.value, viewer, format_ts(now), viewer]
        query = (
            f"{self._select_items} WHERE t.kind = ? AND t.closed_at IS NULL "
            "AND (t.claimed_by IS NULL OR t.claimed_by = ? OR t.claimed_until < ?)"
            f"{_NOT_REQUESTER}"
        )
        query += self._visible(groups, params)
        if application:
            query += " AND t.application = ?"
            params.append(application)
        if tier:
            query += " AND t.tier = ?"
            params.append(tier)
        if after is not None:
            # Spelled out so the first term is a range on the index (a row-value comparison
            # alone is not, and a deep page would scan every item before it).
            query += (
                f" AND {key} >= ? AND ({key} > ? "
                "OR (t.tier_rank, t.id) > (CAST(? AS INTEGER), CAST(? AS BIGINT)))"
            )
            params.extend((after[0], *after))
        query += f" ORDER BY {key}, t.tier_rank, t.id LIMIT ?"
        params.append(limit + 1)
        rows = await self._rows(query, params)
        items = [_item(r) for r in rows[:limit]]
        cursor: QueueCursor | None = None
        if len(rows) > limit:
            last = rows[limit - 1]
            cursor = (last[_N + 3], last[_RANK], last[_N])
        return items, cursor

    async def queue_counts(
        self,
        kind: TaskKind,
        *,
        viewer: str | None = None,
        groups: tuple[str, ...] | None = None,
    ) -> dict[str, int]:
        params: list[Any] = [kind.value]
        query = (
            "SELECT t.application, COUNT(*) FROM review_tasks t "
            "JOIN decisions d ON d.id = t.decision_id "
            "WHERE t.kind = ? AND t.closed_at IS NULL"
        )
        if viewer is not None:
            query += _NOT_REQUESTER
            params.append(viewer)
        query += self._visible(groups, params) + " GROUP BY t.application"
        return {app: n for app, n in await self._rows(query, params)}

    async def open_task(self, decision_id: str, kind: TaskKind) -> QueueItem | None:
        rows = await self._rows(
            f"{self._select_items} WHERE t.decision_id = ? AND t.kind = ? "
            "AND t.closed_at IS NULL ORDER BY t.id LIMIT 1",
            (decision_id, kind.value),
        )
        return _item(rows[0]) if rows else None

    # -- claims -------------------------------------------------------------------------

    async def claim_task(
        self, decision_id: str, kind: TaskKind, reviewer: str, now: datetime, until: datetime
    ) -> None:
        now_s, until_s = format_ts(now), format_ts(until)
        lock = self._SKIP_LOCKED

        async def claim(tx: WriteTx) -> Exception | None:
            row = await tx.fetchrow(_OPEN_TASK + lock, decision_id, kind.value)
            if row is None:
                if await tx.fetchrow(_OPEN_TASK, decision_id, kind.value) is None:
                    return NotFound("open review task for decision", decision_id)
                return Conflict(f"decision {decision_id} is being claimed by someone else")
            if await tx.fetchrow(_DISABLED, reviewer):
                return PermissionDenied(f"account {reviewer} is disabled")
            if await tx.fetchrow(_REQUESTED_BY, decision_id, reviewer):
                return PermissionDenied(
                    f"maker-checker: {reviewer} requested decision {decision_id} and may not "
                    "claim it; a different reviewer must"
                )
            # After the row lock and in the same transaction as the lease: a verdict's
            # transaction also writes this row, so one committed just before is seen here and
            # its author gets no lease (it would keep the next reviewer out).
            if kind is TaskKind.DECISION and await tx.fetchrow(_REVIEWED_BY, decision_id, reviewer):
                return PermissionDenied(
                    f"{reviewer} already gave a verdict on decision {decision_id}; "
                    "the next one must come from a different reviewer"
                )
            task_id, holder, held_until = row
            if holder not in (None, reviewer) and held_until is not None and held_until >= now_s:
                return Conflict(f"decision {decision_id} is being reviewed by {holder}")
            await tx.execute(_LEASE, reviewer, until_s, task_id)
            return None

        refused = await self._unchained(claim)
        if refused is not None:
            raise refused

    async def release_task(self, decision_id: str, kind: TaskKind, reviewer: str) -> bool:
        async def release(tx: WriteTx) -> bool:
            return await tx.execute(_RELEASE, decision_id, kind.value, reviewer) > 0

        return await self._unchained(release)

    # -- verdicts -----------------------------------------------------------------------

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
        self._check_running()
        write = verdict.prepare(
            decision_id, review, new_status, final_output, event, expected, expected_reviews
        )
        select = f"{self._SELECT_DECISION} WHERE d.id = ?"

        async def apply(tx: WriteTx) -> Any:
            if await tx.execute(sql.UPDATE_REVIEWED, *write.update) != 1:
                row = await tx.fetchrow(verdict.SELECT_STATUS, decision_id)
                return write.refused(None if row is None else row[0])
            await tx.execute(sql.INSERT_REVIEW, *write.insert)
            await tx.execute(write.tasks_sql, *write.tasks_params(tx.now))
            await tx.append([write.draft])
            tx.changed.append(decision_id)
            row = await tx.fetchrow(select, decision_id)
            assert row is not None  # updated just above, in this transaction
            result = decision(row)
            if write.final:  # counted per model version in this transaction (monitoring)
                for count in monitor.verdict_rows(result, tx.now):
                    await tx.execute(UPSERT_COUNT, *count)
                await outbox.enqueue_final(tx, result)
            return result

        result: Decision = await self._write(apply)
        return result
