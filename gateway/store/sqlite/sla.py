"""SQLite's step of SLA expiry and escalation (`gateway.store.sla`): the reason is appended to
the decision's JSON list in the same UPDATE that checks it is still open."""

from __future__ import annotations

from typing import Any

from gateway.store.sla import OPEN
from gateway.store.tx import SQLiteTx


class SQLiteSlaMixin:
    """`_update_open` for `SQLiteStore`."""

    _GREATEST = "max"

    async def _update_open(
        self,
        tx: SQLiteTx,
        assignments: str,
        params: tuple[Any, ...],
        decision_id: str,
        reason: str,
    ) -> bool:
        cur = tx.conn.execute(
            f"UPDATE decisions SET {assignments}, "  # noqa: S608 (constant assignments)
            "reasons = json_insert(reasons, '$[#]', ?) WHERE id = ? AND status IN (?, ?)",
            (*params, reason, decision_id, *OPEN),
        )
        return cur.rowcount == 1
