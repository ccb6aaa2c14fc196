"""The shadow policy version and its disagreements: written once for both databases.

The shadow version's texts are kept in ``policy_versions`` like any other (``last_load`` 0
until it is applied for real), so `audit policy DIGEST` reads it too. Disagreements are written
by a background flush (`gateway.core.shadow`), outside every decision's transaction: they are
a measurement, and must never slow or fail the decision they describe.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.audit.drafts import prepare_draft
from gateway.policy.versions import PolicyVersion
from gateway.store.tx import WriteTx
from gateway.timefmt import format_ts, parse_ts
from gateway.types import AuditDraft

T = TypeVar("T")

_SELECT_SHADOW = "SELECT digest, since, set_by FROM policy_shadow WHERE id = 1"
_KEEP_VERSION = (
    "INSERT INTO policy_versions (digest, files, source, loaded_at, loaded_by, last_load) "
    "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (digest) DO NOTHING"
)
_SET_SHADOW = (
    "INSERT INTO policy_shadow (id, digest, since, set_by) VALUES (1, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, since = excluded.since, "
    "set_by = excluded.set_by"
)
_COLUMNS = (
    "shadow_digest, decision_id, enforced_digest, application, made_at, old_action, "
    "new_action, old_tier, new_tier, old_rule, new_rule"
)
_INSERT_DISAGREEMENT = (
    f"INSERT INTO shadow_disagreements ({_COLUMNS}) "  # noqa: S608 - constant columns
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (shadow_digest, decision_id) DO NOTHING"
)
_SELECT_DISAGREEMENTS = (
    f"SELECT {_COLUMNS} FROM shadow_disagreements WHERE shadow_digest = ? "  # noqa: S608
    "ORDER BY made_at, decision_id LIMIT ?"
)


@dataclass(frozen=True, slots=True)
class ShadowState:
    """The shadow version now: its digest, since when and who set it."""

    digest: str
    since: datetime
    set_by: str


@dataclass(frozen=True, slots=True)
class Disagreement:
    """A live decision the shadow version would have decided otherwise."""

    shadow_digest: str
    decision_id: str
    enforced_digest: str
    application: str
    made_at: datetime
    old_action: str
    new_action: str
    old_tier: str
    new_tier: str
    old_rule: str
    new_rule: str

    def row(self) -> tuple[str, ...]:
        return (
            self.shadow_digest,
            self.decision_id,
            self.enforced_digest,
            self.application,
            format_ts(self.made_at),
            self.old_action,
            self.new_action,
            self.old_tier,
            self.new_tier,
            self.old_rule,
            self.new_rule,
        )


class ShadowMixin:
    """The shadow policy for both stores (see the module docstring)."""

    _ANNOUNCE_POLICY: str | None

    if TYPE_CHECKING:

        async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

        async def _write(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

        async def _unchained(self, fn: Callable[[Any], Awaitable[T]]) -> T: ...

    async def shadow_policy(self) -> ShadowState | None:
        """The shadow version, or None when there is none."""
        rows = await self._rows(_SELECT_SHADOW, ())
        if not rows or rows[0][0] is None:
            return None
        digest, since, set_by = rows[0]
        return ShadowState(str(digest), parse_ts(str(since)), str(set_by))

    async def set_shadow_policy(
        self, version: PolicyVersion | None, event: AuditDraft, now: datetime
    ) -> bool:
        """Make ``version`` the shadow (None: no shadow), keeping its texts, with ``event``
        (``previous``, the shadow digest before or "", added to its payload). False when it
        already was (nothing written)."""
        digest = version.digest if version is not None else None
        announce = self._ANNOUNCE_POLICY

        async def put(tx: WriteTx) -> bool:
            row = await tx.fetchrow(_SELECT_SHADOW)
            previous = str(row[0]) if row is not None and row[0] is not None else None
            if previous == digest:
                return False
            if version is not None:
                files = json.dumps([list(f) for f in version.files])
                stamp = format_ts(version.loaded_at)
                await tx.execute(
                    _KEEP_VERSION, version.digest, files, version.source, stamp, version.loaded_by
                )
            await tx.execute(_SET_SHADOW, digest, format_ts(now), event.actor)
            payload = {**event.payload, "previous": previous or ""}
            await tx.append([prepare_draft(dataclasses.replace(event, payload=payload))])
            if announce is not None:
                await tx.execute(announce, digest or "")
            return True

        return await self._write(put)

    async def record_disagreements(self, disagreements: Sequence[Disagreement]) -> None:
        """Keep ``disagreements`` (each once per shadow version and decision)."""
        rows = [d.row() for d in disagreements]

        async def put(tx: WriteTx) -> None:
            for row in rows:
                await tx.execute(_INSERT_DISAGREEMENT, *row)

        if rows:
            await self._unchained(put)

    async def disagreements(self, shadow_digest: str, limit: int = 10_000) -> list[Disagreement]:
        """The disagreements recorded for ``shadow_digest``, oldest first."""
        rows = await self._rows(_SELECT_DISAGREEMENTS, (shadow_digest, limit))
        return [_disagreement([str(v) for v in r]) for r in rows]


def _disagreement(r: list[str]) -> Disagreement:
    return Disagreement(r[0], r[1], r[2], r[3], parse_ts(r[4]), r[5], r[6], r[7], r[8], r[9], r[10])
