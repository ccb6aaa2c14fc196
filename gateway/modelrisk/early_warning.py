"""Early warning that acts: the policies' ``monitor:`` thresholds tested on every replica, and
the admin's way back (clearing an escalation).

Every ``interval`` seconds (`Periodic`) each replica reads the stored counts of every monitored
model version (`gateway.store.monitoring`: the same on every replica, and kept across restarts)
and tests each threshold:

- **A rate** (override, reject, QA disagreement, error, timeout) breaches only when its window
  holds at least ``min_reviews`` trials *and* the lower end of the 95% Wilson score interval of
  the rate is above the threshold (`gateway.modelrisk.stats.wilson_lower`). A rate over few
  samples never triggers: 3 overrides of 5 reviews is a rate of 0.6 but proves little, and
  the bound says so. This is a one-sided test at 2.5% of "the true rate is at most the threshold".
- **Drift** (``psi``) breaches when the population stability index of a numeric output over the
  window, against the version's reference histogram, is above the threshold, with at least
  ``min_reviews`` outputs in the window; the largest PSI over the output's fields counts.
  The reference is the one stored with ``set_model_reference`` (the inventory's approval
  chooses the window); without one, it is the version's first `REFERENCE_DAYS` days of
  recorded outputs, fixed once those days have passed (``replace=False``: every replica keeps
  the first one stored). PSI is a distance, not a test, so ``min_reviews`` is its only guard
  against noise.

Acting. A breach is opened with a compare-and-set in one store write together with its audit
event (`MODEL_BREACH`, carrying the figures: counts, rate, bound, threshold, window), so of
several replicas finding it in the same tick exactly one records it and acts; the others find
it open and do nothing. Actions:

- ``alert``: the breach event, the ``hitl_model_breaches`` metric and a structured log line
  (``model.breach``, warning). The code has no webhooks yet, so an alert is these three.
- ``escalate``: in the same write, ``models.escalated`` is set (a second compare-and-set) with
  a `MODEL_ESCALATED` event; decisions on the version are then held for review until an admin
  clears it (`gateway.modelrisk.escalations`). A version that is not in the inventory cannot
  be escalated: the breach is recorded and logged as such.
- ``suspend``: after the breach commits, the winning replica suspends the version through the
  inventory (`gateway.modelrisk.inventory.ModelInventory.suspend`, its usual audit event).

A breach whose rate falls back under the threshold is closed (no event), so a later one is new.
Clearing an escalation closes the version's breaches and counts evidence only from the next
hour on: the evidence that led to the escalation has been judged by a person.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.errors import GatewayError
from gateway.modelrisk.monitor import RATES, bucket, rate_of
from gateway.modelrisk.record import ModelKey, ModelRecord
from gateway.modelrisk.stats import psi, wilson_interval
from gateway.periodic import Periodic
from gateway.policy.model import MonitorRule, PolicySet
from gateway.store.monitoring import BreachState, ModelReference
from gateway.telemetry import metrics
from gateway.timefmt import format_ts
from gateway.types import AuditDraft, JSONObject

log = structlog.get_logger("gateway.modelrisk.early_warning")

ACTOR = "system"
"""Who the early warning's own events name."""
REFERENCE_DAYS = 7
"""Days of a version's first recorded outputs that make its reference, when none was chosen."""
METRICS_WINDOW = timedelta(hours=24)
"""Window of the rates exported as metrics for rates no threshold names."""
MAX_REASON = 2000
PSI = "psi"


class MonitoringStore(Protocol):
    """What the early warning needs from the store (`gateway.store.monitoring`)."""

    async def model_counts(self, key: ModelKey, since: str) -> dict[str, int]: ...

    async def model_count_series(self, key: ModelKey, since: str) -> list[tuple[str, str, int]]: ...

    async def model_histogram(
        self, key: ModelKey, since: str, until: str = "~"
    ) -> dict[str, dict[int, int]]: ...

    async def model_first_output(self, key: ModelKey) -> str | None: ...

    async def get_model_reference(self, key: ModelKey) -> ModelReference | None: ...

    async def set_model_reference(
        self, key: ModelKey, since: datetime, until: datetime, actor: str, *, replace: bool = True
    ) -> ModelReference: ...

    async def model_breach_states(self) -> list[BreachState]: ...

    async def record_breach(
        self,
        key: ModelKey,
        metric: str,
        breach: AuditDraft,
        escalation: tuple[str, AuditDraft] | None = None,
    ) -> tuple[bool, bool]: ...

    async def close_breach(self, key: ModelKey, metric: str) -> bool: ...

    async def clear_model_escalation(
        self, key: ModelKey, metrics: Sequence[str], not_before: str, event: AuditDraft
    ) -> bool: ...

    async def get_model(self, key: ModelKey) -> ModelRecord | None: ...

    async def list_models(self) -> list[ModelRecord]: ...


class Suspender(Protocol):
    """The inventory's suspension (`gateway.modelrisk.inventory.ModelInventory.suspend`)."""

    async def suspend(self, key: ModelKey, *, actor: str, justification: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Finding:
    """One threshold tested on one model version: the figures, and whether they breach it."""

    key: ModelKey
    rule: MonitorRule
    events: int
    """Overrides, rejections, disagreements, failures (rates); 0 for ``psi``."""
    trials: int
    """What the rate is a share of; outputs in the window for ``psi``."""
    value: float
    """The rate, or the PSI."""
    bound: float
    """The lower end of the rate's 95% Wilson interval; the PSI itself for ``psi``."""
    upper: float
    since: str
    """The first hour counted."""
    breached: bool
    field: str = ""
    """For ``psi``: the output field with the largest PSI."""

    def figures(self) -> JSONObject:
        """What the audit events carry."""
        r = self.rule
        out: JSONObject = {
            "backend": self.key.backend,
            "name": self.key.name,
            "version": self.key.version,
            "metric": r.metric,
            "threshold": r.above,
            "min_reviews": r.min_samples,
            "window_seconds": r.window,
            "window_since": self.since,
            "action": r.action,
            "trials": self.trials,
        }
        if r.metric == PSI:
            out |= {"psi": round(self.value, 6), "field": self.field, "test": "psi_above"}
        else:
            out |= {
                "events": self.events,
                "rate": round(self.value, 6),
                "lower_bound": round(self.bound, 6),
                "upper_bound": round(self.upper, 6),
                "test": "wilson_lower_95_above",
            }
        return out

    def summary(self) -> str:
        r = self.rule
        if r.metric == PSI:
            return (
                f"psi of {self.field} {self.value:.3f} > {r.above} over {self.trials} outputs "
                f"since {self.since}"
            )
        return (
            f"{r.metric} {self.events}/{self.trials} = {self.value:.3f}, 95% lower bound "
            f"{self.bound:.3f} > {r.above} since {self.since}"
        )


def monitored(policies: PolicySet) -> dict[ModelKey, dict[str, MonitorRule]]:
    """Every model version the policies use, with its thresholds by metric. A metric named by
    the backend and by one of its applications keeps the strictest (lowest) threshold."""
    out: dict[ModelKey, dict[str, MonitorRule]] = {}
    for b in policies.backends.values():
        out.setdefault(ModelKey(b.name, b.model, b.version), {})
    sources = [(b, b.monitor) for b in policies.backends.values()]
    sources += [(a.backend, a.monitor) for a in policies.applications.values()]
    for b, rules in sources:
        mine = out.setdefault(ModelKey(b.name, b.model, b.version), {})
        for rule in rules:
            held = mine.get(rule.metric)
            if held is None or rule.above < held.above:
                mine[rule.metric] = rule
    return out


class EarlyWarning:
    """Tests every monitored model version's thresholds and acts on breaches (see the module
    docstring).

    Args:
        store: Counts, references, breaches and the inventory.
        policies: The policies in force (called each run, so a reload applies).
        inventory: What suspends a version (``action: suspend``); None refuses to suspend
            (logged) and records the breach only.
        interval: Seconds between runs.
        clock: Wall time.
    """

    def __init__(
        self,
        store: MonitoringStore,
        policies: Callable[[], PolicySet],
        *,
        inventory: Suspender | None = None,
        interval: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._policies = policies
        self._inventory = inventory
        self._clock = clock
        self._timer = Periodic(
            "early-warning", self.run, interval, failure_event="early_warning.run_failed"
        )

    def start(self) -> None:
        self._timer.start()

    async def stop(self) -> None:
        await self._timer.stop()

    async def run(self) -> list[Finding]:
        """One pass over every monitored version; the findings that breached and were acted on
        by this replica."""
        now = self._clock()
        states = {(s.key, s.metric): s for s in await self._store.model_breach_states()}
        records = {r.key: r for r in await self._store.list_models()}
        acted: list[Finding] = []
        for key, rules in monitored(self._policies()).items():
            labels = (key.backend, key.name, key.version)
            record = records.get(key)
            metrics.model_escalated(labels, record is not None and record.escalated)
            await self._export_rates(key, rules, now)
            for rule in rules.values():
                state = states.get((key, rule.metric))
                finding = await self.test(key, rule, now, state)
                if finding is None:
                    continue
                if finding.breached and (state is None or not state.open):
                    if await self._act(finding, record):
                        acted.append(finding)
                elif not finding.breached and state is not None and state.open:
                    await self._store.close_breach(key, rule.metric)
        return acted

    async def test(
        self, key: ModelKey, rule: MonitorRule, now: datetime, state: BreachState | None = None
    ) -> Finding | None:
        """The figures of ``rule`` on ``key`` now (None: drift without a reference yet)."""
        since = bucket(format_ts(now - timedelta(seconds=rule.window)))
        if state is not None and state.not_before is not None:
            since = max(since, state.not_before)
        if rule.metric == PSI:
            return await self._test_psi(key, rule, now, since)
        k, n = rate_of(RATES[rule.metric], await self._store.model_counts(key, since))
        low, high = wilson_interval(k, n)
        rate = k / n if n else 0.0
        breached = n >= rule.min_samples and low > rule.above
        return Finding(key, rule, k, n, rate, low, high, since, breached)

    async def _test_psi(
        self, key: ModelKey, rule: MonitorRule, now: datetime, since: str
    ) -> Finding | None:
        reference = await self.reference(key, now)
        if reference is None:
            return None
        current = await self._store.model_histogram(key, since)
        worst: tuple[float, str, int] = (0.0, "", 0)
        for field, expected in sorted(reference.histogram.items()):
            actual = current.get(field, {})
            n = sum(actual.values())
            if n < rule.min_samples:
                continue
            value = psi(expected, actual)
            metrics.model_psi((key.backend, key.name, key.version), field, value)
            if value > worst[0] or not worst[1]:
                worst = (value, field, n)
        value, field, n = worst
        breached = bool(field) and value > rule.above
        return Finding(key, rule, 0, n, value, value, value, since, breached, field)

    async def reference(self, key: ModelKey, now: datetime) -> ModelReference | None:
        """The stored reference of ``key``, or the lazy default once its days have passed."""
        stored = await self._store.get_model_reference(key)
        if stored is not None:
            return stored
        first = await self._store.model_first_output(key)
        if first is None:
            return None
        start = datetime.fromisoformat(first).astimezone(UTC)
        until = start + timedelta(days=REFERENCE_DAYS)
        if until > now:
            return None
        return await self._store.set_model_reference(key, start, until, ACTOR, replace=False)

    @property
    def store(self) -> MonitoringStore:
        return self._store

    def policies(self) -> PolicySet:
        """The policies in force now."""
        return self._policies()

    def now(self) -> datetime:
        return self._clock()

    async def _export_rates(
        self, key: ModelKey, rules: dict[str, MonitorRule], now: datetime
    ) -> None:
        """Every rate of ``key`` as metrics, over its rule's window or `METRICS_WINDOW`."""
        by_since: dict[str, dict[str, int]] = {}
        labels = (key.backend, key.name, key.version)
        for name, rate in RATES.items():
            rule = rules.get(name)
            window = timedelta(seconds=rule.window) if rule is not None else METRICS_WINDOW
            since = bucket(format_ts(now - window))
            counts = by_since.get(since)
            if counts is None:
                counts = by_since[since] = await self._store.model_counts(key, since)
            k, n = rate_of(rate, counts)
            metrics.model_rate(labels, name, k / n if n else math.nan, wilson_interval(k, n)[0])

    async def _act(self, finding: Finding, record: ModelRecord | None) -> bool:
        """Record the breach and its action; False when another replica did first."""
        key, rule = finding.key, finding.rule
        figures = finding.figures()
        breach = audit_event(EventType.MODEL_BREACH, "", ACTOR, figures)
        escalation = None
        if rule.action == "escalate":
            reason = f"monitoring: {finding.summary()}"[:MAX_REASON]
            escalation = (
                reason,
                audit_event(EventType.MODEL_ESCALATED, "", ACTOR, figures | {"reason": reason}),
            )
        recorded, escalated = await self._store.record_breach(key, rule.metric, breach, escalation)
        if not recorded:
            return False
        labels = (key.backend, key.name, key.version)
        metrics.model_breach(labels, rule.metric, rule.action)
        log.warning("model.breach", model=str(key), **figures)
        if escalated:
            metrics.model_escalated(labels, True)
            log.warning("model.escalated", model=str(key), metric=rule.metric)
        elif rule.action == "escalate":
            why = "not in the model inventory" if record is None else "escalated already"
            log.warning("model.escalation_skipped", model=str(key), why=why)
        if rule.action == "suspend":
            await self._suspend(finding)
        return True

    async def _suspend(self, finding: Finding) -> None:
        if self._inventory is None:
            log.error("model.suspend_unavailable", model=str(finding.key))
            return
        try:
            await self._inventory.suspend(
                finding.key, actor=ACTOR, justification=f"monitoring: {finding.summary()}"
            )
        except GatewayError as exc:  # not approved, not in the inventory, changed meanwhile
            log.warning("model.suspend_refused", model=str(finding.key), why=exc.message)
        else:
            log.warning("model.suspended", model=str(finding.key), metric=finding.rule.metric)
