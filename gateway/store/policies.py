"""Policy versions: written once for both databases (through `gateway.store.tx.WriteTx` and the
shared reads' ``_rows``). Every version the gateway loads is kept with the exact texts its digest
was computed from, so the rules in force for any decision can be read back by its
``policy_version``.

Several replicas start with the same files, and a restart loads them again: the row is written
once, and a ``policy.loaded`` event only when the digest differs from the one loaded last (found
under the writer's lock, which every replica's transactions take, so two replicas starting
together write one event).

The version in force is the one loaded last (the highest ``last_load``). A version applied to a
running fleet (`gateway.core.policy_in_force`) stays in force when a replica restarts with an
older directory: at start, a directory whose digest was stored before does not take over (a
rollback is an apply); one never seen before does (a deploy of new files).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from gateway.audit.drafts import prepare_draft
from gateway.policy.versions import PolicyVersion
from gateway.store.tx import WriteTx
from gateway.timefmt import format_ts, parse_ts
from gateway.types import AuditDraft

T = TypeVar("T")
log = structlog.get_logger("gateway.store")

_COLUMNS = "digest, files, source, loaded_at, loaded_by"
_LAST = "SELECT digest, last_load FROM policy_versions ORDER BY last_load DESC LIMIT 1"
_INSERT = (
    f"INSERT INTO policy_versions ({_COLUMNS}, last_load) VALUES (?, ?, ?, ?, ?, ?) "  # noqa: S608
    "ON CONFLICT (digest) DO NOTHING"
)
_LOADED_AGAIN = "UPDATE policy_versions SET last_load = ? WHERE digest = ?"
_KNOWN = "SELECT 1 FROM policy_versions WHERE digest = ? AND last_load > 0"
"""Was in force once (a version stored only as a shadow has ``last_load`` 0)."""
_SELECT = f"SELECT {_COLUMNS} FROM policy_versions"  # noqa: S608 - constant columns
SELECT_POLICY_VERSION = f"{_SELECT} WHERE digest = ?"
"""One version by digest (``?`` style), for the read-only trail readers; rows for
`policy_version`."""


class PoliciesMixin:
    """Policy versions for both stores (see the module docstring)."""

    _ANNOUNCE_POLICY: str | None = None
    """A ``?``-style statement announcing a change of the policy in force (or the shadow) to
    other processes, run in the change's transaction; None where nobody else listens."""
    _policy_callbacks: list[Callable[[], None]]

    if TYPE_CHECKING:

        async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

        async def _write(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

    async def record_policy_version(
        self, version: PolicyVersion, event: AuditDraft, *, at_start: bool = False
    ) -> bool:
        """Keep ``version`` (once per digest) and, when it is not the version loaded last,
        make it the version in force with ``event`` (``previous``, the digest loaded last or
        "", added to its payload). With ``at_start``, a version stored before does not take
        over (see the module docstring).

        True when the event was written: the policy in force changed.
        """
        files = json.dumps([list(f) for f in version.files])
        row = (version.digest, files, version.source, format_ts(version.loaded_at))
        announce = self._ANNOUNCE_POLICY

        async def put(tx: WriteTx) -> bool:
            last = await tx.fetchrow(_LAST)
            previous, rank = (str(last[0]), int(last[1])) if last is not None else ("", 0)
            if previous == version.digest:
                return False
            if at_start and previous and await tx.fetchrow(_KNOWN, version.digest) is not None:
                return False
            await tx.execute(_INSERT, *row, version.loaded_by, rank + 1)
            await tx.execute(_LOADED_AGAIN, rank + 1, version.digest)
            payload = {**event.payload, "previous": previous}
            await tx.append([prepare_draft(dataclasses.replace(event, payload=payload))])
            if announce is not None:
                await tx.execute(announce, version.digest)
            return True

        return await self._write(put)

    async def enforced_policy(self) -> str:
        """The digest of the version in force ("" before any was loaded)."""
        rows = await self._rows(_LAST, ())
        return str(rows[0][0]) if rows else ""

    def subscribe_policies(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` for each change of the enforced or shadow version committed by
        any process (where the store announces them; the followers' timer reads them anyway)."""
        self._policy_callbacks.append(callback)

    def _policy_changed(self, _payload: str = "") -> None:
        for callback in self._policy_callbacks:
            try:
                callback()
            except Exception:  # one broken subscriber must not silence the others
                log.exception("store.policy_callback_failed")

    async def get_policy_version(self, digest: str) -> PolicyVersion | None:
        rows = await self._rows(SELECT_POLICY_VERSION, (digest,))
        return policy_version(rows[0]) if rows else None

    async def list_policy_versions(self) -> list[PolicyVersion]:
        """Every stored version, the first loaded first."""
        rows = await self._rows(f"{_SELECT} ORDER BY loaded_at, digest", ())
        return [policy_version(r) for r in rows]


def policy_version(row: Sequence[Any]) -> PolicyVersion:
    """A `PolicyVersion` from a row of ``digest, files, source, loaded_at, loaded_by``."""
    digest, files, source, loaded_at, loaded_by = row
    return PolicyVersion(
        digest=str(digest),
        files=tuple((str(name), str(text)) for name, text in json.loads(files)),
        source=str(source),
        loaded_at=parse_ts(str(loaded_at)),
        loaded_by=str(loaded_by),
    )
