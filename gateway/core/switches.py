"""The kill switch: pause an application or a model backend, on every replica within a second.

The state lives in the store (table ``switches``; every change is an audit event with its actor
and reason). The pipeline asks on every decision, so each process keeps an in-memory mapping of
paused application ids (`current`: a clock read and a dict, no I/O per decision) and keeps it
in step with the store:

- it re-reads the small ``switches`` table every `refresh_every` seconds (0.5 s), whether or
  not anything was announced: a change made by another replica, by the CLI on the same SQLite
  file or PostgreSQL database, or while this replica's change feed was down, is seen within
  that interval. A store that announces changes (PostgreSQL: ``NOTIFY`` in the transaction of
  the change) triggers a re-read at once, so on a healthy fleet a change lands in milliseconds;
- the state is trusted for `trust_for` seconds (1 s) after the last read that succeeded began.
  A decision that finds it older (the timer was late: a busy process, a slow read) re-reads it
  before going on; only when that read fails (or takes longer than `trust_for`) is the decision
  refused with ``StoreUnavailable`` (gRPC UNAVAILABLE with a retry pushback; retried with the
  same idempotency key, nothing was recorded). `confirmed` turns False meanwhile, which takes
  the replica out of readiness. A pause committed before a decision starts is thus either
  applied to it or the decision is not made, if it was committed more than `trust_for` earlier;
  a process that is merely busy never refuses for that.

Why not "fail closed" by treating every application as paused when the state cannot be read:
that would, fleet-wide and for a database hiccup, write held decisions whose audit trail says
"paused" although nobody paused anything (false evidence), flood the review queues with work
for people, and answer applications with ``on_pause: reject`` FAILED_PRECONDITION, which their
callers do not retry. And when the switches cannot be read the decision usually cannot be
recorded either. Refusing with UNAVAILABLE is honest, retryable and lets the load balancer send
the caller to a replica that can confirm the state. Why not trust memory when reads fail: a
pause made elsewhere would then be missed for as long as the failure lasts.

A re-read is one ``SELECT`` of a few rows: measured at about 0.1 ms of CPU on SQLite and
0.2 ms on PostgreSQL per read (see the README), two a second per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import structlog

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.errors import InvalidInput, StoreUnavailable
from gateway.periodic import Periodic
from gateway.policy import PolicySet
from gateway.store.protocol import ReviewStore
from gateway.types import SwitchState

log = structlog.get_logger("gateway.switches")

APPLICATION = "application"
BACKEND = "backend"
KINDS = (APPLICATION, BACKEND)
MAX_REASON = 500
"""Characters of a reason kept in the state and the audit event."""


class KillSwitches:
    """The fleet's switch state, as this process follows it.

    Args:
        store: Where the state and its audit events live.
        policies: The applications and backends that can be switched.
        clock: Wall time of a change (for the state and its event).
        refresh_every: Seconds between re-reads of the stored state.
        trust_for: Seconds the state read last is trusted; older, new decisions are refused.
        monotonic: The clock `trust_for` is measured with (a test passes one it controls).
    """

    def __init__(
        self,
        store: ReviewStore,
        policies: PolicySet,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        refresh_every: float = 0.5,
        trust_for: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < refresh_every < trust_for:
            raise ValueError("refresh_every must be positive and shorter than trust_for")
        self._store = store
        self._policies = policies
        self._clock = clock
        self._trust_for = trust_for
        self._monotonic = monotonic
        self._states: dict[tuple[str, str], SwitchState] = {}
        self.paused_applications: dict[str, bool] = {}
        """Applications whose new decisions are held or refused (directly or through their
        backend), each to True when the backend is paused (the model must not be called).
        Replaced, never mutated, so a reader always sees one consistent state."""
        self._confirmed_at = float("-inf")
        """Monotonic time at which the last read that succeeded began."""
        # Reads are applied in the order they began: one at a time, under this lock.
        self._lock = asyncio.Lock()
        self._failing = False
        self._follower = Periodic(
            "kill-switches",
            self._follow,
            refresh_every,
            failure_event="switches.refresh_failed",
            wait_first=True,
        )
        self._announced_reads: set[asyncio.Task[None]] = set()
        self._following = False

    # -- following the store -----------------------------------------------------------------

    async def load(self) -> None:
        """Read the stored state once (a failure raises: at start, or in a one-shot command)."""
        async with self._lock:
            await self._read()

    async def start(self) -> None:
        """Load the state, then follow the store's changes until `stop`."""
        await self.load()
        self._following = True
        self._store.subscribe_switches(self._announced)
        self._store.subscribe_resync(self._announced)
        self._follower.start()

    async def stop(self) -> None:
        """Stop following. Idempotent."""
        self._following = False
        await self._follower.stop()
        tasks, self._announced_reads = self._announced_reads, set()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def refresh(self) -> None:
        """Re-read the stored state, unless a read that began after this call already ended.

        Raises:
            StoreUnavailable: The store could not be read.
        """
        asked = self._monotonic()
        async with self._lock:
            if self._confirmed_at >= asked:
                return
            await self._read()

    def confirmed(self) -> bool:
        """True while the state in memory was read from the store within `trust_for`."""
        return self._monotonic() - self._confirmed_at <= self._trust_for

    async def current(self) -> Mapping[str, bool]:
        """`paused_applications`, for the decision about to be made: no I/O while the state is
        confirmed, else one re-read first.

        Raises:
            StoreUnavailable: The state was not confirmed within `trust_for` and could not be
                read now: a pause made elsewhere could be missed, so no decision is made (see
                the module docstring).
        """
        if self._monotonic() - self._confirmed_at <= self._trust_for:
            return self.paused_applications
        try:
            async with asyncio.timeout(self._trust_for):
                await self.refresh()
        except Exception as exc:
            age = self._monotonic() - self._confirmed_at
            raise StoreUnavailable(
                "the decision",
                f"kill switch state not confirmed for {age:.1f} s: the decision was not "
                "recorded; retry later with the same idempotency key",
                retry_after=0.5,
            ) from exc
        return self.paused_applications

    async def _read(self) -> None:
        """Read and apply the stored state; the caller holds the lock."""
        began = self._monotonic()
        stored = await self._store.list_switches()
        self._apply(stored)
        self._confirmed_at = began

    def _apply(self, stored: Iterable[SwitchState]) -> None:
        states = {(s.kind, s.name): s for s in stored}
        if states != self._states and self._confirmed_at > float("-inf"):
            for key in states.keys() | self._states.keys():
                new, old = states.get(key), self._states.get(key)
                if (new is not None and new.paused) != (old is not None and old.paused):
                    log.warning(
                        "switch.followed",
                        kind=key[0],
                        name=key[1],
                        paused=new is not None and new.paused,
                        actor=None if new is None else new.changed_by,
                    )
        self._states = states
        self._rebuild()

    async def _follow(self) -> None:
        """One re-read of the timer or of an announcement; failures are logged once each."""
        try:
            await self.refresh()
        except Exception as exc:
            if not self._failing:
                self._failing = True
                log.error("switches.unconfirmed", error=repr(exc))
            return
        if self._failing:
            self._failing = False
            log.warning("switches.confirmed")

    def _announced(self) -> None:
        """The store says a switch changed (or its change feed is back): re-read now."""
        if not self._following:
            return
        task = asyncio.get_running_loop().create_task(self._follow(), name="switches-announced")
        self._announced_reads.add(task)
        task.add_done_callback(self._announced_reads.discard)

    def _rebuild(self) -> None:
        paused_backends = {n for (k, n), s in self._states.items() if k == BACKEND and s.paused}
        paused = {n: False for (k, n), s in self._states.items() if k == APPLICATION and s.paused}
        for app in self._policies.applications.values():
            if app.backend.name in paused_backends:
                paused[app.id] = True
        self.paused_applications = paused

    # -- reading and changing ------------------------------------------------------------------

    def states(self) -> list[tuple[str, str, SwitchState | None]]:
        """``(kind, name, state)`` of every application and backend the policies know."""
        out: list[tuple[str, str, SwitchState | None]] = []
        for app_id in sorted(self._policies.applications):
            out.append((APPLICATION, app_id, self._states.get((APPLICATION, app_id))))
        for backend in sorted(self._policies.backends):
            out.append((BACKEND, backend, self._states.get((BACKEND, backend))))
        return out

    async def stored_states(self) -> list[tuple[str, str, SwitchState | None]]:
        """`states`, read from the store now (what every replica applies within a second)."""
        await self.refresh()
        return self.states()

    def is_paused(self, kind: str, name: str) -> bool:
        state = self._states.get((kind, name))
        return state is not None and state.paused

    async def set(
        self,
        kind: str,
        name: str,
        paused: bool,
        actor: str,
        reason: str = "",
    ) -> SwitchState:
        """Pause or resume (audited); takes effect here for the next decision, and on every
        other replica and process within `refresh_every`.

        A pause needs a reason (the audit trail must say why decisions stopped flowing); a
        resume may give one.

        Raises:
            InvalidInput: Unknown kind, a name the policies do not define, or a pause without
                a reason.
        """
        if kind == APPLICATION:
            known = name in self._policies.applications
        elif kind == BACKEND:
            known = name in self._policies.backends
        else:
            raise InvalidInput("kind", f"expected application or backend, not {kind!r}")
        if not known:
            raise InvalidInput("name", f"unknown {kind} {name!r}")
        reason = reason.strip()[:MAX_REASON]
        if paused and not reason:
            raise InvalidInput("reason", "required to pause: say why")
        now = self._clock()
        state = SwitchState(kind, name, paused, actor, now, reason)
        event = audit_event(
            EventType.SWITCH_PAUSED if paused else EventType.SWITCH_RESUMED,
            "",
            actor,
            {"kind": kind, "name": name, "reason": reason},
            ts=now,
        )
        await self._store.set_switch(state, event)
        log.warning("switch.changed", kind=kind, name=name, paused=paused, actor=actor)
        # Under the lock, so a read that began before the commit cannot end after this and undo
        # the change here; then re-read, to pick up what others changed meanwhile too.
        async with self._lock:
            self._states = {**self._states, (kind, name): state}
            self._rebuild()
            with contextlib.suppress(Exception):  # committed; the timer's re-read confirms
                await self._read()
        return state
