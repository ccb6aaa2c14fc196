"""SQLite side of the review queue: queue pages, claims, SLA expiry and escalation, QA opinions,
reviewer accounts and kill switches.

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
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.audit.chain import format_ts, parse_ts
from gateway.errors import Conflict, NotFound, PermissionDenied
from gateway.store import codec
from gateway.store.protocol import QueueCursor
from gateway.types import (
    Account,
    AuditDraft,
    Decision,
    QueueItem,
    ReviewTask,
    Role,
    SwitchState,
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
_OPEN = ("PENDING_REVIEW", "IN_REVIEW")


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


def _account_from_row(row: Sequence[Any]) -> Account:
    name, role, groups, password_hash, created_at, disabled = row
    return Account(
        name=name,
        role=Role(role),
        groups=tuple(codec.loads_opt(groups)),
        password_hash=password_hash,
        created_at=parse_ts(created_at),
        disabled=bool(disabled),
    )


class SQLiteReviewsMixin:
    """Review queue, accounts and switches for `SQLiteStore` (see the module docstring)."""

    if TYPE_CHECKING:

        async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]: ...

        async def _write(self, fn: Callable[[sqlite3.Connection, str], T]) -> T: ...

        def _append_events(
            self, conn: sqlite3.Connection, drafts: list[codec.PreparedDraft], now: str
        ) -> None: ...

    # -- queue reads -------------------------------------------------------------------------

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

    async def queue_stats(self, kind: TaskKind) -> list[tuple[str, int, datetime]]:
        """``(tier, open tasks, oldest created_at)`` per tier, for the queue gauges."""
        sql = (
            "SELECT t.tier, COUNT(*), MIN(t.created_at) FROM review_tasks t "
            "WHERE t.kind = ? AND t.closed_at IS NULL GROUP BY t.tier"
        )
        rows = await self._fetchall(sql, [kind.value])
        return [(tier, n, parse_ts(oldest)) for tier, n, oldest in rows]

    async def open_task(self, decision_id: str, kind: TaskKind) -> QueueItem | None:
        """The open task of ``kind`` for a decision, with its claim."""
        rows = await self._fetchall(
            f"{_SELECT_ITEMS} WHERE t.decision_id = ? AND t.kind = ? AND t.closed_at IS NULL "
            "ORDER BY t.id LIMIT 1",
            (decision_id, kind.value),
        )
        return _item(rows[0]) if rows else None

    async def overdue_tasks(self, now: datetime, limit: int = 100) -> list[ReviewTask]:
        """Open DECISION tasks whose SLA deadline has passed, oldest deadline first."""
        rows = await self._fetchall(
            f"SELECT {_TASK_COLS} FROM review_tasks t "  # noqa: S608 (constants only)
            "WHERE t.closed_at IS NULL AND t.kind = 'decision' AND t.deadline < ? "
            "ORDER BY t.deadline LIMIT ?",
            (format_ts(now), limit),
        )
        return [codec.task_from_row(r) for r in rows]

    async def qa_reviews_for(self, decision_id: str) -> list[tuple[str, str, bool, str, datetime]]:
        """``(reviewer, role, agree, reason, at)`` of every QA opinion on a decision."""
        rows = await self._fetchall(
            "SELECT reviewer, role, agree, reason, at FROM qa_reviews WHERE decision_id = ? "
            "ORDER BY at",
            (decision_id,),
        )
        return [(r[0], r[1], bool(r[2]), r[3], parse_ts(r[4])) for r in rows]

    # -- claims ------------------------------------------------------------------------------

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

        def claim(conn: sqlite3.Connection, _now: str) -> Any:
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

        def release(conn: sqlite3.Connection, _now: str) -> bool:
            cur = conn.execute(
                "UPDATE review_tasks SET claimed_by = NULL, claimed_until = NULL "
                "WHERE decision_id = ? AND kind = ? AND closed_at IS NULL AND claimed_by = ?",
                (decision_id, kind.value, reviewer),
            )
            return cur.rowcount > 0

        return await self._write(release)

    # -- SLA ---------------------------------------------------------------------------------

    async def expire_decision(
        self,
        decision_id: str,
        final_output: dict[str, Any] | None,
        reason: str,
        event: AuditDraft,
        now: datetime,
    ) -> Decision:
        """Make an open decision EXPIRED with the timeout outcome, closing its tasks.

        Raises:
            Conflict: The decision became final meanwhile.
        """
        draft = codec.prepare_draft(event)
        output = codec.dumps_opt(final_output)
        at = format_ts(now)

        def expire(conn: sqlite3.Connection, commit_ts: str) -> Any:
            cur = conn.execute(
                "UPDATE decisions SET status = 'EXPIRED', final_output = ?, updated_at = ?, "
                "reasons = json_insert(reasons, '$[#]', ?) WHERE id = ? AND status IN (?, ?)",
                (output, at, reason, decision_id, *_OPEN),
            )
            if cur.rowcount != 1:
                return Conflict(f"decision {decision_id} is no longer open")
            conn.execute(
                "UPDATE review_tasks SET closed_at = ? "
                "WHERE decision_id = ? AND kind = 'decision' AND closed_at IS NULL",
                (commit_ts, decision_id),
            )
            self._append_events(conn, [draft], commit_ts)
            return _decision(conn, decision_id)

        return await self._write(expire)

    async def escalate_decision(
        self,
        decision_id: str,
        *,
        tier: str,
        tier_rank: int,
        groups: tuple[str, ...],
        approvals_needed: int,
        deadline: datetime | None,
        reason: str,
        event: AuditDraft,
        now: datetime,
    ) -> Decision:
        """Move an open decision and its task to a higher tier with a fresh deadline.

        Raises:
            Conflict: The decision became final meanwhile.
        """
        draft = codec.prepare_draft(event)
        deadline_s, at, groups_s = codec.ts_opt(deadline), format_ts(now), codec.dumps(groups)

        def escalate(conn: sqlite3.Connection, commit_ts: str) -> Any:
            cur = conn.execute(
                "UPDATE decisions SET tier = ?, approvals_needed = max(approvals_needed, ?), "
                "review_deadline = ?, updated_at = ?, reasons = json_insert(reasons, '$[#]', ?) "
                "WHERE id = ? AND status IN (?, ?)",
                (tier, approvals_needed, deadline_s, at, reason, decision_id, *_OPEN),
            )
            if cur.rowcount != 1:
                return Conflict(f"decision {decision_id} is no longer open")
            conn.execute(
                "UPDATE review_tasks SET tier = ?, tier_rank = ?, groups = ?, deadline = ?, "
                "claimed_by = NULL, claimed_until = NULL "
                "WHERE decision_id = ? AND kind = 'decision' AND closed_at IS NULL",
                (tier, tier_rank, groups_s, deadline_s, decision_id),
            )
            self._append_events(conn, [draft], commit_ts)
            return _decision(conn, decision_id)

        return await self._write(escalate)

    # -- QA ----------------------------------------------------------------------------------

    async def record_qa(
        self,
        decision_id: str,
        *,
        reviewer: str,
        role: str,
        agree: bool,
        reason: str,
        at: datetime,
        event: AuditDraft,
    ) -> None:
        """Record a QA opinion and close the QA task; the decision itself never changes.

        Raises:
            Conflict: The QA task is already closed (someone gave their opinion first).
        """
        draft = codec.prepare_draft(event)
        at_s = format_ts(at)

        def record(conn: sqlite3.Connection, commit_ts: str) -> Any:
            cur = conn.execute(
                "UPDATE review_tasks SET closed_at = ? "
                "WHERE decision_id = ? AND kind = 'qa' AND closed_at IS NULL",
                (commit_ts, decision_id),
            )
            if cur.rowcount == 0:
                return Conflict(f"decision {decision_id} has no open QA review")
            conn.execute(
                "INSERT INTO qa_reviews (decision_id, reviewer, role, agree, reason, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (decision_id, reviewer, role, int(agree), reason, at_s),
            )
            self._append_events(conn, [draft], commit_ts)
            return None

        await self._write(record)

    async def append_event(self, event: AuditDraft) -> None:
        """Record an audit event that changes no state (e.g. personal data was unmasked)."""
        draft = codec.prepare_draft(event)

        def append(conn: sqlite3.Connection, commit_ts: str) -> None:
            self._append_events(conn, [draft], commit_ts)

        await self._write(append)

    # -- accounts ----------------------------------------------------------------------------

    async def add_account(self, account: Account, event: AuditDraft) -> None:
        """Store a new account. Raises `Conflict` when the name is taken."""
        draft = codec.prepare_draft(event)
        row = (
            account.name,
            account.role.value,
            codec.dumps(list(account.groups)),
            account.password_hash,
            format_ts(account.created_at),
            int(account.disabled),
        )

        def add(conn: sqlite3.Connection, commit_ts: str) -> Any:
            cur = conn.execute(
                "INSERT INTO accounts (name, role, groups, password_hash, created_at, disabled) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                row,
            )
            if cur.rowcount != 1:
                return Conflict(f"account {account.name!r} already exists")
            self._append_events(conn, [draft], commit_ts)
            return None

        await self._write(add)

    async def get_account(self, name: str) -> Account | None:
        rows = await self._fetchall(
            "SELECT name, role, groups, password_hash, created_at, disabled FROM accounts "
            "WHERE name = ?",
            (name,),
        )
        return _account_from_row(rows[0]) if rows else None

    async def list_accounts(self) -> list[Account]:
        rows = await self._fetchall(
            "SELECT name, role, groups, password_hash, created_at, disabled FROM accounts "
            "ORDER BY name",
            (),
        )
        return [_account_from_row(r) for r in rows]

    # -- kill switches -----------------------------------------------------------------------

    async def set_switch(self, state: SwitchState, event: AuditDraft) -> None:
        """Pause or resume an application or backend, with its audit event."""
        draft = codec.prepare_draft(event)
        row = (
            state.kind,
            state.name,
            int(state.paused),
            state.changed_by,
            format_ts(state.changed_at),
            state.reason,
        )

        def put(conn: sqlite3.Connection, commit_ts: str) -> None:
            conn.execute(
                "INSERT INTO switches (kind, name, paused, changed_by, changed_at, reason) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, name) DO UPDATE SET "
                "paused = excluded.paused, changed_by = excluded.changed_by, "
                "changed_at = excluded.changed_at, reason = excluded.reason",
                row,
            )
            self._append_events(conn, [draft], commit_ts)

        await self._write(put)

    async def list_switches(self) -> list[SwitchState]:
        rows = await self._fetchall(
            "SELECT kind, name, paused, changed_by, changed_at, reason FROM switches "
            "ORDER BY kind, name",
            (),
        )
        return [
            SwitchState(k, n, bool(p), by, parse_ts(at), reason) for k, n, p, by, at, reason in rows
        ]
