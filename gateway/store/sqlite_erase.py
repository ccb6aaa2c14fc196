"""Erasing a data subject's personal data in the SQLite store, recorded in the audit chain.

A mixin of `SQLiteStore`: the erasure is one function in the writer transaction, so it is
atomic with the audit event that records it. ``secure_delete`` is on for that transaction, so
SQLite zeroes the space the old values leave; the write-ahead log, which still holds the old
page images, is then checkpointed and truncated.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import structlog

from gateway.store import codec
from gateway.store.erasure import ERASED_INPUT, checkpoint_wal
from gateway.types import AuditDraft

T = TypeVar("T")
log = structlog.get_logger("gateway.store")


class SQLiteErasureMixin:
    """`erase_subject` for `SQLiteStore`."""

    if TYPE_CHECKING:
        path: Path

        async def _write(self, fn: Callable[[sqlite3.Connection, str], T]) -> T: ...

        def _append_events(
            self, conn: sqlite3.Connection, drafts: list[codec.PreparedDraft], now: str
        ) -> None: ...

    async def erase_subject(self, subject_ref: str, event: AuditDraft) -> tuple[int, int]:
        """Overwrite the stored input of every decision about ``subject_ref`` and erase the
        payloads of their audit events, appending ``event`` in the same transaction (its
        payload gains the counts ``decisions`` and ``events``). Returns those two counts.
        """
        if not subject_ref:
            raise ValueError("erasure needs a subject reference")

        def erase(conn: sqlite3.Connection, commit_ts: str) -> tuple[int, int]:
            conn.execute("PRAGMA secure_delete=ON")
            try:
                events = conn.execute(
                    "UPDATE audit_events SET payload = NULL WHERE payload IS NOT NULL AND "
                    "decision_id IN (SELECT id FROM decisions WHERE subject_ref = ?)",
                    (subject_ref,),
                ).rowcount
                decisions = conn.execute(
                    "UPDATE decisions SET input = ? WHERE subject_ref = ? AND input != ?",
                    (ERASED_INPUT, subject_ref, ERASED_INPUT),
                ).rowcount
            finally:
                conn.execute("PRAGMA secure_delete=OFF")
            counted = {**event.payload, "decisions": decisions, "events": events}
            draft = codec.prepare_draft(replace(event, payload=counted))
            self._append_events(conn, [draft], commit_ts)
            return decisions, events

        counts = await self._write(erase)
        try:
            await asyncio.to_thread(checkpoint_wal, self.path)
        except sqlite3.Error as exc:  # committed already: the old pages go at a later checkpoint
            log.warning("store.erasure_checkpoint_failed", error=str(exc))
        return counts
