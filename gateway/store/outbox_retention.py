"""How long the outbox keeps what it no longer needs, on both stores.

A delivered message stays listed (and can be re-sent) for ``outbox_keep``; after that it is
deleted. A dead-lettered one is never deleted here: it waits for an operator (re-sent, or
looked at). A reviewer notice mark (`gateway.store.outbox_notices`) of a decision that is final
is deleted after the same time: nothing will be announced about it again. Breach marks stay:
they name one opening of a breach, which may still be open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.store.tx import WriteTx
from gateway.timefmt import format_ts

T = TypeVar("T")

FINAL_STATUSES = ("APPROVED", "REJECTED", "OVERRIDDEN", "EXPIRED")
"""`gateway.types.Status` values that are final (a test keeps the two in step)."""
_DELIVERED = "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?"
_MARKS = (
    "DELETE FROM outbox_marks WHERE kind IN ('queued', 'sla') AND at < ? AND decision_id IN "
    "(SELECT id FROM decisions "
    "WHERE status IN ('APPROVED', 'REJECTED', 'OVERRIDDEN', 'EXPIRED'))"
)


class OutboxRetentionMixin:
    """``purge_outbox`` for both stores."""

    if TYPE_CHECKING:

        async def _unchained(self, fn: Callable[[Any], Awaitable[T]]) -> T: ...

    async def purge_outbox(self, before: datetime) -> tuple[int, int]:
        """Delete the messages delivered before ``before`` and the notice marks of final
        decisions made before it; ``(messages, marks)`` deleted."""
        cutoff = format_ts(before)

        async def purge(tx: WriteTx) -> tuple[int, int]:
            return await tx.execute(_DELIVERED, cutoff), await tx.execute(_MARKS, cutoff)

        return await self._unchained(purge)
