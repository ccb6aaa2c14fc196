"""A model version's monitoring as its page shows it: rates day by day with their thresholds,
and drift of each numeric output against the reference (read-only: never stores a reference
or acts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.modelrisk.early_warning import (
    METRICS_WINDOW,
    PSI,
    EarlyWarning,
    Finding,
    MonitoringStore,
    monitored,
)
from gateway.modelrisk.monitor import RATES, bucket, rate_of
from gateway.modelrisk.record import ModelKey
from gateway.modelrisk.stats import psi
from gateway.policy.model import PolicySet
from gateway.store.monitoring import ModelReference
from gateway.timefmt import format_ts


@dataclass(frozen=True, slots=True)
class RateSeries:
    """One rate of a model version day by day, with its threshold (for the model page)."""

    name: str
    label: str
    threshold: float | None
    points: list[tuple[str, int, int]]
    """``(day, events, trials)``, oldest first; days without trials are left out."""
    finding: Finding | None
    """The threshold's test now (None: no threshold)."""


@dataclass(frozen=True, slots=True)
class Drift:
    """One numeric output of a model version now against its reference."""

    field: str
    current: dict[int, int]
    reference: dict[int, int]
    psi: float


@dataclass(frozen=True, slots=True)
class Report:
    """A model version's monitoring as its page shows it."""

    key: ModelKey
    days: list[str]
    rates: list[RateSeries]
    drift: list[Drift]
    drift_threshold: float | None
    reference: ModelReference | None
    window_since: str
    """The first hour of the drift window (its rule's, or `METRICS_WINDOW`)."""


CHARTED = (
    "auto_approve_rate",
    "held_rate",
    "override_rate",
    "reject_rate",
    "qa_disagreement_rate",
    "error_rate",
)
"""The rates the model page charts, in order."""


async def report(
    store: MonitoringStore, policies: PolicySet, key: ModelKey, now: datetime, days: int = 14
) -> Report:
    """The last ``days`` days of ``key``'s rates and its drift now, with the thresholds the
    policies set (read-only: never stores a reference or acts)."""
    rules = monitored(policies).get(key, {})
    first_day = (now - timedelta(days=days - 1)).date()
    day_list = [(first_day + timedelta(days=i)).isoformat() for i in range(days)]
    since = bucket(format_ts(datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)))
    per_day: dict[str, dict[str, int]] = {}
    for hour, metric, n in await store.model_count_series(key, since):
        day = per_day.setdefault(hour[:10], {})
        day[metric] = day.get(metric, 0) + n
    warning = EarlyWarning(store, lambda: policies, clock=lambda: now)
    states = {(s.key, s.metric): s for s in await store.model_breach_states()}
    series = []
    for name in CHARTED:
        rate, rule = RATES[name], rules.get(name)
        points = [(d, *rate_of(rate, per_day.get(d, {}))) for d in day_list]
        finding = (
            None if rule is None else await warning.test(key, rule, now, states.get((key, name)))
        )
        series.append(
            RateSeries(
                name,
                rate.label,
                None if rule is None else rule.above,
                [p for p in points if p[2] > 0],
                finding,
            )
        )
    psi_rule = rules.get(PSI)
    window = timedelta(seconds=psi_rule.window) if psi_rule is not None else METRICS_WINDOW
    window_since = bucket(format_ts(now - window))
    reference = await store.get_model_reference(key)
    current = await store.model_histogram(key, window_since)
    drift = []
    for field in sorted(set(current) | set(reference.histogram if reference else {})):
        expected = reference.histogram.get(field, {}) if reference else {}
        actual = current.get(field, {})
        drift.append(Drift(field, actual, expected, psi(expected, actual)))
    return Report(
        key,
        day_list,
        series,
        drift,
        None if psi_rule is None else psi_rule.above,
        reference,
        window_since,
    )


async def report_for(warning: EarlyWarning, key: ModelKey, days: int = 14) -> Report:
    """`report` of ``key`` with what ``warning`` follows (its store, policies and clock)."""
    return await report(warning.store, warning.policies(), key, warning.now(), days)
