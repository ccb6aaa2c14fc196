"""The reads whose SQL is the same on both databases, written once.

A store mixes `StoreReads` in and supplies `_rows` (run a ``?``-style statement on a reader,
see `gateway.store.sql`), the statement that selects a decision with its reviews (it aggregates
JSON, which each database spells its own way) and how the queue orders missing deadlines (SQLite
must spell it as its index does, or the index is not used).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from gateway.store import codec, sql
from gateway.timefmt import format_ts, parse_ts
from gateway.types import ApiKey, AuditEvent, Decision, ReviewTask, TaskKind

_TASKS = ", ".join(f"t.{c}" for c in codec.TASK_COLUMNS)


def decision(row: Sequence[Any]) -> Decision:
    """A `Decision` from a `codec.SELECT_DECISION`-shaped row (columns, then reviews JSON)."""
    values = tuple(row)
    return codec.decision_from_row(values[:-1], values[-1])


class StoreReads:
    """Single-row and chain-order reads shared by both stores."""

    _SELECT_DECISION: ClassVar[str]
    """``SELECT`` of decisions ``d`` with their reviews as the last column."""
    _DEADLINE_ORDER: ClassVar[str]
    """An open task's deadline as a sort key, missing deadlines last."""

    async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        raise NotImplementedError

    async def get_decision(self, decision_id: str) -> Decision | None:
        rows = await self._rows(f"{self._SELECT_DECISION} WHERE d.id = ?", (decision_id,))
        return decision(rows[0]) if rows else None

    async def find_by_idempotency_key(self, application: str, key: str) -> Decision | None:
        if not key:
            return None
        rows = await self._rows(
            f"{self._SELECT_DECISION} WHERE d.application = ? AND d.idempotency_key = ? "
            "AND d.idempotency_key != ''",
            (application, key),
        )
        return decision(rows[0]) if rows else None

    async def list_review_tasks(
        self, kind: TaskKind, *, limit: int = 100, open_only: bool = True
    ) -> list[ReviewTask]:
        """Tasks of ``kind``, most urgent first: earliest deadline, no deadline last."""
        where = "t.kind = ? AND t.closed_at IS NULL" if open_only else "t.kind = ?"
        rows = await self._rows(
            f"SELECT {_TASKS} FROM review_tasks t WHERE {where} "  # noqa: S608 (constants only)
            f"ORDER BY {self._DEADLINE_ORDER}, t.tier_rank, t.id LIMIT ?",
            (kind.value, limit),
        )
        return [codec.task_from_row(tuple(r)) for r in rows]

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = await self._rows(sql.SELECT_KEY, (key_id,))
        return codec.api_key_from_row(tuple(rows[0])) if rows else None

    async def audit_events(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEvent]:
        """Events in chain order with ``seq > after_seq``."""
        rows = await self._rows(
            f"{codec.SELECT_EVENTS} WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        )
        return [codec.event_from_row(tuple(r)) for r in rows]

    async def audit_events_for(self, decision_id: str) -> list[AuditEvent]:
        """Every event of one decision, in chain order."""
        rows = await self._rows(
            f"{codec.SELECT_EVENTS} WHERE decision_id = ? ORDER BY seq", (decision_id,)
        )
        return [codec.event_from_row(tuple(r)) for r in rows]

    async def queue_stats(self, kind: TaskKind) -> list[tuple[str, int, datetime]]:
        """``(tier, open tasks, oldest created_at)`` per tier, for the queue gauges."""
        rows = await self._rows(
            "SELECT t.tier, COUNT(*), MIN(t.created_at) FROM review_tasks t "
            "WHERE t.kind = ? AND t.closed_at IS NULL GROUP BY t.tier",
            (kind.value,),
        )
        return [(tier, n, parse_ts(oldest)) for tier, n, oldest in rows]

    async def overdue_tasks(self, now: datetime, limit: int = 100) -> list[ReviewTask]:
        """Open DECISION tasks whose SLA deadline has passed, oldest deadline first."""
        rows = await self._rows(
            f"SELECT {_TASKS} FROM review_tasks t "  # noqa: S608 (constants only)
            "WHERE t.closed_at IS NULL AND t.kind = 'decision' AND t.deadline < ? "
            "ORDER BY t.deadline LIMIT ?",
            (format_ts(now), limit),
        )
        return [codec.task_from_row(tuple(r)) for r in rows]

    async def qa_reviews_for(self, decision_id: str) -> list[tuple[str, str, bool, str, datetime]]:
        """``(reviewer, role, agree, reason, at)`` of every QA opinion on a decision."""
        rows = await self._rows(
            "SELECT reviewer, role, agree, reason, at FROM qa_reviews WHERE decision_id = ? "
            "ORDER BY at",
            (decision_id,),
        )
        return [(r[0], r[1], bool(r[2]), r[3], parse_ts(r[4])) for r in rows]
