"""The kill switch: pause an application or a model backend with one click.

The pipeline asks on every decision, so the answer is an in-memory mapping of paused
application ids, rebuilt only when a switch changes (a set lookup per decision, no read of the
store). The store holds the durable state and the audit trail; it is loaded once at start.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.errors import InvalidInput
from gateway.policy import PolicySet
from gateway.store.protocol import ReviewStore
from gateway.types import SwitchState

log = structlog.get_logger("gateway.switches")

APPLICATION = "application"
BACKEND = "backend"


class KillSwitches:
    def __init__(
        self,
        store: ReviewStore,
        policies: PolicySet,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._policies = policies
        self._clock = clock
        self._states: dict[tuple[str, str], SwitchState] = {}
        self.paused_applications: dict[str, bool] = {}
        """Applications whose new decisions are held or refused (directly or through their
        backend), each to True when the backend is paused (the model must not be called).
        Replaced, never mutated, so a reader always sees one consistent state."""

    async def load(self) -> None:
        """Read the durable state (at start)."""
        self._states = {(s.kind, s.name): s for s in await self._store.list_switches()}
        self._rebuild()

    def _rebuild(self) -> None:
        paused_backends = {n for (k, n), s in self._states.items() if k == BACKEND and s.paused}
        paused = {n: False for (k, n), s in self._states.items() if k == APPLICATION and s.paused}
        for app in self._policies.applications.values():
            if app.backend.name in paused_backends:
                paused[app.id] = True
        self.paused_applications = paused

    def states(self) -> list[tuple[str, str, SwitchState | None]]:
        """``(kind, name, state)`` of every application and backend the policies know."""
        out: list[tuple[str, str, SwitchState | None]] = []
        for app_id in sorted(self._policies.applications):
            out.append((APPLICATION, app_id, self._states.get((APPLICATION, app_id))))
        for backend in sorted(self._policies.backends):
            out.append((BACKEND, backend, self._states.get((BACKEND, backend))))
        return out

    def is_paused(self, kind: str, name: str) -> bool:
        state = self._states.get((kind, name))
        return state is not None and state.paused

    async def set(self, kind: str, name: str, paused: bool, actor: str, reason: str = "") -> None:
        """Pause or resume (audited); takes effect for the next decision.

        Raises:
            InvalidInput: Unknown kind, or a name the policies do not define.
        """
        if kind == APPLICATION:
            known = name in self._policies.applications
        elif kind == BACKEND:
            known = name in self._policies.backends
        else:
            raise InvalidInput("kind", f"expected application or backend, not {kind!r}")
        if not known:
            raise InvalidInput("name", f"unknown {kind} {name!r}")
        now = self._clock()
        state = SwitchState(kind, name, paused, actor, now, reason.strip()[:500])
        event = audit_event(
            EventType.SWITCH_PAUSED if paused else EventType.SWITCH_RESUMED,
            "",
            actor,
            {"kind": kind, "name": name, "reason": state.reason},
            ts=now,
        )
        await self._store.set_switch(state, event)
        self._states[(kind, name)] = state
        self._rebuild()
        log.warning("switch.changed", kind=kind, name=name, paused=paused, actor=actor)
