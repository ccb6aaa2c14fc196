"""PostgreSQL side of the review queue: queue pages, claims, SLA expiry and escalation, QA
opinions, reviewer accounts and kill switches.

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
import orjson

from gateway.audit.chain import format_ts, parse_ts
from gateway.errors import Conflict, NotFound, PermissionDenied
from gateway.store import codec
from gateway.store.pg_sql import SELECT_DECISION
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

if TYPE_CHECKING:
    from gateway.store.postgres import Tx

T = TypeVar("T")

_TASK_COLS = ", ".join(f"t.{c}" for c in codec.TASK_COLUMNS)
_SELECT_ITEMS = (
    f"SELECT {_TASK_COLS}, t.id, t.claimed_by, t.claimed_until, "  # noqa: S608 (constants only)
    "COALESCE(t.deadline, '~'), d.approvals_needed, "
    "(SELECT COUNT(*) FROM reviews r WHERE r.decision_id = t.decision_id "
    "AND r.verdict = 'approve') "
    "FROM review_tasks t JOIN decisions d ON d.id = t.decision_id"
)
_OPEN = ("PENDING_REVIEW", "IN_REVIEW")
_ACCOUNT_COLS = "name, role, groups, password_hash, created_at, disabled"


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


class PostgresReviewsMixin:
    """Review queue, accounts and switches for `PostgresStore` (see the module docstring)."""

    if TYPE_CHECKING:

        @property
        def pool(self) -> asyncpg.Pool: ...

        async def _fetch(self, sql: str, *params: Any) -> list[asyncpg.Record]: ...

        async def _write(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...

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

    async def queue_stats(self, kind: TaskKind) -> list[tuple[str, int, datetime]]:
        """``(tier, open tasks, oldest created_at)`` per tier, for the queue gauges."""
        sql = (
            "SELECT t.tier, COUNT(*), MIN(t.created_at) FROM review_tasks t "
            "WHERE t.kind = $1 AND t.closed_at IS NULL GROUP BY t.tier"
        )
        rows = await self._fetch(sql, kind.value)
        return [(tier, n, parse_ts(oldest)) for tier, n, oldest in rows]

    async def open_task(self, decision_id: str, kind: TaskKind) -> QueueItem | None:
        """The open task of ``kind`` for a decision, with its claim."""
        rows = await self._fetch(
            f"{_SELECT_ITEMS} WHERE t.decision_id = $1 AND t.kind = $2 "
            "AND t.closed_at IS NULL ORDER BY t.id LIMIT 1",
            decision_id,
            kind.value,
        )
        return _item(tuple(rows[0])) if rows else None

    async def overdue_tasks(self, now: datetime, limit: int = 100) -> list[ReviewTask]:
        """Open DECISION tasks whose SLA deadline has passed, oldest deadline first."""
        rows = await self._fetch(
            f"SELECT {_TASK_COLS} FROM review_tasks t "  # noqa: S608 (constants only)
            "WHERE t.closed_at IS NULL AND t.kind = 'decision' AND t.deadline < $1 "
            "ORDER BY t.deadline LIMIT $2",
            format_ts(now),
            limit,
        )
        return [codec.task_from_row(tuple(r)) for r in rows]

    async def qa_reviews_for(self, decision_id: str) -> list[tuple[str, str, bool, str, datetime]]:
        """``(reviewer, role, agree, reason, at)`` of every QA opinion on a decision."""
        rows = await self._fetch(
            "SELECT reviewer, role, agree, reason, at FROM qa_reviews WHERE decision_id = $1 "
            "ORDER BY at",
            decision_id,
        )
        return [(r[0], r[1], bool(r[2]), r[3], parse_ts(r[4])) for r in rows]

    # -- claims ------------------------------------------------------------------------------

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

        async def expire(tx: Tx) -> Any:
            reasons = await _open_reasons(tx.conn, decision_id)
            if reasons is None:
                return Conflict(f"decision {decision_id} is no longer open")
            await tx.conn.execute(
                "UPDATE decisions SET status = 'EXPIRED', final_output = $1, updated_at = $2, "
                "reasons = $3 WHERE id = $4",
                output,
                at,
                codec.dumps_str_list([*reasons, reason]),
                decision_id,
            )
            await tx.conn.execute(
                "UPDATE review_tasks SET closed_at = $1 "
                "WHERE decision_id = $2 AND kind = 'decision' AND closed_at IS NULL",
                tx.now,
                decision_id,
            )
            await tx.append([draft])
            tx.changed.append(decision_id)
            return await _decision(tx.conn, decision_id)

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

        async def escalate(tx: Tx) -> Any:
            reasons = await _open_reasons(tx.conn, decision_id)
            if reasons is None:
                return Conflict(f"decision {decision_id} is no longer open")
            await tx.conn.execute(
                "UPDATE decisions SET tier = $1, approvals_needed = GREATEST(approvals_needed, "
                "$2), review_deadline = $3, updated_at = $4, reasons = $5 WHERE id = $6",
                tier,
                approvals_needed,
                deadline_s,
                at,
                codec.dumps_str_list([*reasons, reason]),
                decision_id,
            )
            await tx.conn.execute(
                "UPDATE review_tasks SET tier = $1, tier_rank = $2, groups = $3, deadline = $4, "
                "claimed_by = NULL, claimed_until = NULL "
                "WHERE decision_id = $5 AND kind = 'decision' AND closed_at IS NULL",
                tier,
                tier_rank,
                groups_s,
                deadline_s,
                decision_id,
            )
            await tx.append([draft])
            tx.changed.append(decision_id)
            return await _decision(tx.conn, decision_id)

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

        async def record(tx: Tx) -> Any:
            closed = await tx.conn.fetchval(
                "UPDATE review_tasks SET closed_at = $1 "
                "WHERE decision_id = $2 AND kind = 'qa' AND closed_at IS NULL RETURNING 1",
                tx.now,
                decision_id,
            )
            if closed is None:
                return Conflict(f"decision {decision_id} has no open QA review")
            await tx.conn.execute(
                "INSERT INTO qa_reviews (decision_id, reviewer, role, agree, reason, at) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                decision_id,
                reviewer,
                role,
                int(agree),
                reason,
                at_s,
            )
            await tx.append([draft])
            tx.changed.append(decision_id)
            return None

        await self._write(record)

    async def append_event(self, event: AuditDraft) -> None:
        """Record an audit event that changes no state (e.g. personal data was unmasked)."""
        draft = codec.prepare_draft(event)

        async def append(tx: Tx) -> None:
            await tx.append([draft])

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

        async def add(tx: Tx) -> Any:
            done = await tx.conn.fetchval(
                f"INSERT INTO accounts ({_ACCOUNT_COLS}) VALUES ($1, $2, $3, $4, $5, $6) "  # noqa: S608
                "ON CONFLICT (name) DO NOTHING RETURNING 1",
                *row,
            )
            if done is None:
                return Conflict(f"account {account.name!r} already exists")
            await tx.append([draft])
            return None

        await self._write(add)

    async def get_account(self, name: str) -> Account | None:
        rows = await self._fetch(
            f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE name = $1",  # noqa: S608
            name,
        )
        return _account_from_row(tuple(rows[0])) if rows else None

    async def list_accounts(self) -> list[Account]:
        rows = await self._fetch(f"SELECT {_ACCOUNT_COLS} FROM accounts ORDER BY name")  # noqa: S608
        return [_account_from_row(tuple(r)) for r in rows]

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

        async def put(tx: Tx) -> None:
            await tx.conn.execute(
                "INSERT INTO switches (kind, name, paused, changed_by, changed_at, reason) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, name) DO UPDATE SET "
                "paused = excluded.paused, changed_by = excluded.changed_by, "
                "changed_at = excluded.changed_at, reason = excluded.reason",
                *row,
            )
            await tx.append([draft])

        await self._write(put)

    async def list_switches(self) -> list[SwitchState]:
        rows = await self._fetch(
            "SELECT kind, name, paused, changed_by, changed_at, reason FROM switches "
            "ORDER BY kind, name"
        )
        return [
            SwitchState(k, n, bool(p), by, parse_ts(at), reason) for k, n, p, by, at, reason in rows
        ]


async def _open_reasons(conn: asyncpg.Connection, decision_id: str) -> list[str] | None:
    """The reasons of an open decision, locking its row; None when it is final or missing."""
    text = await conn.fetchval(
        "SELECT reasons FROM decisions WHERE id = $1 AND status = ANY($2::text[]) FOR UPDATE",
        decision_id,
        list(_OPEN),
    )
    if text is None:
        return None
    reasons: list[str] = orjson.loads(text)
    return reasons
