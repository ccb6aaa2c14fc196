"""Shadow evaluation: every live decision also classified and routed under a candidate policy,
without acting on it.

Promotion of a rule change is safest when the change has already met the traffic it will
decide. While a shadow version is set (`policy apply --shadow`), each decision made here is,
after it is recorded, evaluated again under the shadow with the model output it got (the model
is never called twice), by the same function as `policy replay` (`gateway.policy_replay`), so a
shadow report and a replay of the same decisions agree. The answer never waits for it: the
evaluation is scheduled on the event loop after the decision is recorded.

Disagreements are counted in Prometheus by application and the shadow's rule, and kept in the
store for `policy shadow-report` by a background flush: a measurement must never slow or fail
the decision it measures, so a store that cannot take them loses the rows (counted), not a
decision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Counter

from gateway.periodic import Periodic
from gateway.policy import PolicySet
from gateway.policy_replay import StoredDecision, replay
from gateway.store.protocol import ReviewStore
from gateway.store.shadow import Disagreement
from gateway.telemetry.metrics import REGISTRY
from gateway.types import Decision, JSONObject

log = structlog.get_logger("gateway.shadow")

EVALUATIONS = Counter(
    "hitl_shadow_evaluations",
    "Live decisions evaluated under the shadow policy, by application and result "
    "(agree, disagree, not_comparable)",
    ("application", "result"),
    registry=REGISTRY,
)
DISAGREEMENTS = Counter(
    "hitl_shadow_disagreements",
    "Live decisions the shadow policy would have decided otherwise, by application and the "
    "shadow's rule",
    ("application", "rule"),
    registry=REGISTRY,
)
SECONDS = Counter(
    "hitl_shadow_evaluation_seconds",
    "Time spent evaluating live decisions under the shadow policy (with the evaluations "
    "counter: the mean cost of one, where it runs)",
    registry=REGISTRY,
)
DROPPED = Counter(
    "hitl_shadow_disagreements_dropped",
    "Disagreements not kept in the store (buffer full or store unavailable)",
    registry=REGISTRY,
)


class ShadowObserver:
    """Evaluates decisions under the shadow and keeps the disagreements (see the module
    docstring).

    Args:
        store: Where disagreements are kept.
        flush_every: Seconds between writes of the disagreements found meanwhile.
        max_buffered: Disagreements held between writes; beyond, new ones are dropped (counted).
    """

    def __init__(
        self,
        store: ReviewStore,
        *,
        flush_every: float = 0.5,
        max_buffered: int = 10_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._max = max_buffered
        self._clock = clock
        self._buffer: list[Disagreement] = []
        # Label children by key: `Counter.labels` costs more than the rest of an agreeing
        # evaluation's bookkeeping.
        self._counted: dict[tuple[str, str], Any] = {}
        self._timer = Periodic(
            "shadow-flush",
            self.flush,
            flush_every,
            failure_event="shadow.flush_failed",
            wait_first=True,
        )

    def start(self) -> None:
        self._timer.start()

    async def stop(self) -> None:
        """Stop the timer and write what is buffered. Idempotent."""
        await self._timer.stop()
        try:
            await self.flush()
        except Exception as exc:  # the store may be closing too: counted, never raised
            log.warning("shadow.flush_failed", error=repr(exc))

    def schedule(
        self, shadow: PolicySet, enforced: str, decision: Decision, clear_input: JSONObject
    ) -> None:
        """Evaluate ``decision`` under ``shadow`` once the caller's task yields."""
        asyncio.get_running_loop().call_soon(self.observe, shadow, enforced, decision, clear_input)

    def observe(
        self, shadow: PolicySet, enforced: str, decision: Decision, clear_input: JSONObject
    ) -> None:
        """``decision`` (made under ``enforced``) evaluated under ``shadow``."""
        started = time.perf_counter()
        try:
            self._observe(shadow, enforced, decision, clear_input)
        finally:
            SECONDS.inc(time.perf_counter() - started)

    def _observe(
        self, shadow: PolicySet, enforced: str, decision: Decision, clear_input: JSONObject
    ) -> None:
        model = decision.model
        stored = StoredDecision(
            id=decision.id,
            application=decision.application,
            tier=decision.tier,
            status=decision.status,
            rule=decision.rule,
            input=clear_input,
            model=model,
            model_output=decision.model_output,
            labels=decision.labels,
            approvals_needed=decision.approvals_needed,
        )
        try:
            out = replay(stored, shadow)
        except Exception as exc:  # a shadow must never disturb the live path
            log.warning("shadow.evaluation_failed", decision_id=decision.id, error=repr(exc))
            self._count(decision.application, "not_comparable")
            return
        if out.reason:
            self._count(decision.application, "not_comparable")
            return
        if not out.changed:
            self._count(decision.application, "agree")
            return
        self._count(decision.application, "disagree")
        DISAGREEMENTS.labels(decision.application, out.new_rule).inc()
        if len(self._buffer) >= self._max:
            DROPPED.inc()
            return
        self._buffer.append(
            Disagreement(
                shadow_digest=shadow.version,
                decision_id=decision.id,
                enforced_digest=enforced,
                application=decision.application,
                made_at=decision.created_at,
                old_action=out.old_action or "",
                new_action=out.new_action or "",
                old_tier=out.old_tier,
                new_tier=out.new_tier,
                old_rule=out.old_rule,
                new_rule=out.new_rule,
            )
        )

    def _count(self, application: str, result: str) -> None:
        key = (application, result)
        child = self._counted.get(key)
        if child is None:
            child = self._counted[key] = EVALUATIONS.labels(application, result)
        child.inc()

    async def flush(self) -> None:
        """Write the disagreements found since the last write."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            await self._store.record_disagreements(batch)
        except Exception:
            DROPPED.inc(len(batch))
            raise
