"""PostgreSQL's step of SLA expiry and escalation (`gateway.store.sla`): the decision row is
locked while its reasons are read, so two replicas expiring one decision cannot both succeed."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from gateway.store import codec
from gateway.store.sla import OPEN as _OPEN
from gateway.store.tx import PostgresTx


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


class PostgresSlaMixin:
    """`_update_open` for `PostgresStore`."""

    _GREATEST = "GREATEST"

    async def _update_open(
        self,
        tx: PostgresTx,
        assignments: str,
        params: tuple[Any, ...],
        decision_id: str,
        reason: str,
    ) -> bool:
        reasons = await _open_reasons(tx.conn, decision_id)
        if reasons is None:
            return False
        await tx.execute(
            f"UPDATE decisions SET {assignments}, reasons = ? WHERE id = ?",  # noqa: S608
            *params,
            codec.dumps_str_list([*reasons, reason]),
            decision_id,
        )
        return True
