"""Policy change operations of a running gateway (AdminService): apply, shadow, report, replay.

Apply and the shadow are `gateway.core.policy_in_force`'s; this module adds what reads the
record: the shadow report (`gateway.core.shadow` keeps its rows) and a replay of this gateway's
own stored decisions under a candidate (`gateway.policy_replay`, read-only, as the
``policy replay`` command does on a data directory).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.core.policy_in_force import ApplyResult, Candidate, PolicyInForce
from gateway.core.vault import Vault
from gateway.errors import InvalidInput, PolicyError
from gateway.policy.texts import load_policy_texts
from gateway.policy_replay import ReplayReport, replay_rows
from gateway.store import is_postgres_url, sqlite_path
from gateway.store.decision_range import read_decisions
from gateway.store.protocol import ReviewStore
from gateway.store.shadow import Disagreement, ShadowState

MAX_REPORT = 100_000
"""Most disagreements one report lists."""


@dataclass(frozen=True, slots=True)
class ShadowReport:
    shadow: ShadowState | None
    """The shadow version now (None: none is set)."""
    digest: str
    """The version reported on."""
    disagreements: list[Disagreement]


class PolicyChanges:
    """What AdminService's policy operations call.

    Args:
        in_force: The versions in force, which `apply` changes.
        store: Where the shadow's disagreements are kept.
        store_url: The store's URL, read-only, for `replay`.
        vault: Opens sealed fields for a replay (None: sealed decisions are not comparable).
    """

    def __init__(
        self, in_force: PolicyInForce, store: ReviewStore, store_url: str, vault: Vault | None
    ) -> None:
        self._in_force = in_force
        self._store = store
        self._store_url = store_url
        self._vault = vault

    async def apply(self, candidate: Candidate, actor: str) -> ApplyResult:
        return await self._in_force.apply(candidate, actor)

    async def clear_shadow(self, actor: str) -> bool:
        return await self._in_force.clear_shadow(actor)

    async def shadow_report(self, digest: str = "", limit: int = 1000) -> ShadowReport:
        """The disagreements of shadow version ``digest`` (default: the current one)."""
        if not 0 <= limit <= MAX_REPORT:
            raise InvalidInput("limit", f"expected 0 to {MAX_REPORT}")
        shadow = await self._store.shadow_policy()
        digest = digest.strip() or (shadow.digest if shadow is not None else "")
        rows = await self._store.disagreements(digest, limit or 1000) if digest else []
        return ShadowReport(shadow, digest, rows)

    async def replay(
        self,
        files: tuple[tuple[str, str], ...],
        since: datetime,
        until: datetime,
        application: str = "",
    ) -> ReplayReport:
        """This gateway's decisions made in ``[since, until)`` replayed under ``files``."""
        if until <= since:
            raise InvalidInput("until", "must be after since")
        try:
            policies = await asyncio.to_thread(load_policy_texts, files)
        except PolicyError as exc:
            raise InvalidInput("files", str(exc)) from None
        url = self._store_url
        location: str | Path = url.strip() if is_postgres_url(url) else sqlite_path(url)
        vault = self._vault

        def run() -> ReplayReport:
            return replay_rows(read_decisions(location, since, until, application), policies, vault)

        return await asyncio.to_thread(run)
