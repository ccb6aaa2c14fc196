"""The store's part for policy versions: the versions kept with their texts, the one in force,
the shadow version and its disagreements (`gateway.store.policies`, `gateway.store.shadow`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from gateway.policy.versions import PolicyVersion
from gateway.store.shadow import Disagreement, ShadowState
from gateway.types import AuditDraft


class PolicyStore(Protocol):
    async def record_policy_version(
        self, version: PolicyVersion, event: AuditDraft, *, at_start: bool = False
    ) -> bool:
        """Keep a loaded policy version's texts (once per digest) and make it the version in
        force with its ``policy.loaded`` event (``previous`` added to the payload), only when
        the digest differs from the one loaded last; with ``at_start``, only when it was never
        in force before. True when the event was written."""
        ...

    async def enforced_policy(self) -> str:
        """The digest of the version in force ("" before any was loaded)."""
        ...

    def subscribe_policies(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when a change of the enforced or shadow version is announced."""
        ...

    async def shadow_policy(self) -> ShadowState | None: ...

    async def set_shadow_policy(
        self, version: PolicyVersion | None, event: AuditDraft, now: datetime
    ) -> bool:
        """Make ``version`` the shadow (None: none) with its ``policy.shadowed`` event."""
        ...

    async def record_disagreements(self, disagreements: Sequence[Disagreement]) -> None: ...

    async def disagreements(self, shadow_digest: str, limit: int = 10_000) -> list[Disagreement]:
        """The shadow version's recorded disagreements, oldest first."""
        ...

    async def get_policy_version(self, digest: str) -> PolicyVersion | None: ...

    async def list_policy_versions(self) -> list[PolicyVersion]:
        """Every stored policy version, the first loaded first."""
        ...
