"""Erasure of a data subject's stored personal data in a running store, written once.

The subject's decision inputs are overwritten, their request digests blanked (a digest of a
known shape of personal data can be reversed by trying candidates; once blank, a retry with the
decision's idempotency key gets the decision back as for one made before digests), and the
payloads of their audit events erased, in one writer transaction that also appends the
erasure's own event (with the counts). The decision rows (status, outcome, reviews) stay: they
are the record of what was decided, and the audit chain still verifies through the payload
digests. A database that keeps old page images (SQLite) supplies `_secure_delete` and
`_after_erasure` to make them leave the disk too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.audit.drafts import prepare_draft
from gateway.store.tx import WriteTx
from gateway.types import AuditDraft

T = TypeVar("T")

ERASED_INPUT = "{}"
"""What an erased decision's input becomes."""

_ERASE_PAYLOADS = (
    "UPDATE audit_events SET payload = NULL WHERE payload IS NOT NULL AND "
    "decision_id IN (SELECT id FROM decisions WHERE subject_ref = ?)"
)
_ERASE_INPUTS = (
    "UPDATE decisions SET input = ?, request_digest = '' "
    "WHERE subject_ref = ? AND (input != ? OR request_digest != '')"
)


class ErasureMixin:
    """`erase_subject` for both stores (see the module docstring)."""

    if TYPE_CHECKING:

        async def _write(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

    @asynccontextmanager
    async def _secure_delete(self, tx: Any) -> AsyncIterator[None]:
        """Around the overwrites: make freed space unreadable (nothing to do by default)."""
        yield

    async def _after_erasure(self) -> None:
        """After the commit: make old page images leave the disk (nothing to do by default)."""

    async def erase_subject(self, subject_ref: str, event: AuditDraft) -> tuple[int, int]:
        """Overwrite the stored input (and blank the request digest) of every decision about
        ``subject_ref`` and erase the payloads of their audit events, appending ``event`` in the
        same transaction (its payload gains the counts ``decisions`` and ``events``). Returns
        those two counts.
        """
        if not subject_ref:
            raise ValueError("erasure needs a subject reference")

        async def erase(tx: WriteTx) -> tuple[int, int]:
            async with self._secure_delete(tx):
                events = await tx.execute(_ERASE_PAYLOADS, subject_ref)
                decisions = await tx.execute(_ERASE_INPUTS, ERASED_INPUT, subject_ref, ERASED_INPUT)
            counted = {**event.payload, "decisions": decisions, "events": events}
            await tx.append([prepare_draft(replace(event, payload=counted))])
            return decisions, events

        counts = await self._write(erase)
        await self._after_erasure()
        return counts
