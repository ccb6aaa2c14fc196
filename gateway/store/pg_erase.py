"""Erasing a data subject's personal data in the PostgreSQL store, recorded in the audit chain.

A mixin of `PostgresStore`: the erasure runs in the writer transaction under the chain lock,
atomic with the audit event that records it. PostgreSQL keeps the old row versions in the table
files until VACUUM reclaims their space, and in its write-ahead log, archives and backups for as
long as those are kept: the operator's retention of those decides when the old values are gone
from disk (see SECURITY.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from gateway.store import codec
from gateway.store.erasure import ERASED_INPUT
from gateway.types import AuditDraft

if TYPE_CHECKING:
    from gateway.store.postgres import Tx

T = TypeVar("T")


class PostgresErasureMixin:
    """`erase_subject` for `PostgresStore`."""

    if TYPE_CHECKING:

        async def _write(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...

    async def erase_subject(self, subject_ref: str, event: AuditDraft) -> tuple[int, int]:
        """Overwrite the stored input of every decision about ``subject_ref`` and erase the
        payloads of their audit events, appending ``event`` in the same transaction (its
        payload gains the counts ``decisions`` and ``events``). Returns those two counts.
        """
        if not subject_ref:
            raise ValueError("erasure needs a subject reference")

        async def erase(tx: Tx) -> tuple[int, int]:
            events = _count(
                await tx.conn.execute(
                    "UPDATE audit_events SET payload = NULL WHERE payload IS NOT NULL AND "
                    "decision_id IN (SELECT id FROM decisions WHERE subject_ref = $1)",
                    subject_ref,
                )
            )
            decisions = _count(
                await tx.conn.execute(
                    "UPDATE decisions SET input = $1 WHERE subject_ref = $2 AND input <> $1",
                    ERASED_INPUT,
                    subject_ref,
                )
            )
            counted = {**event.payload, "decisions": decisions, "events": events}
            await tx.append([codec.prepare_draft(replace(event, payload=counted))])
            return decisions, events

        return await self._write(erase)


def _count(status: str) -> int:
    """Rows changed, from a command status such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])
