"""Prometheus metrics, served at ``/metrics`` on the HTTP port.

The registry is the process's own (not prometheus_client's global one) so several gateways in
one process, as in tests, share the same metric objects instead of registering twice. Label
children are cached in dicts: ``Counter.labels()`` costs more than a dict lookup, and the
decision path pays for it on every call.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

DECISIONS = Counter(
    "hitl_decisions",
    "Decisions created, by application, tier and outcome at creation",
    ("application", "tier", "outcome"),
    registry=REGISTRY,
)
VERDICTS = Counter(
    "hitl_verdicts",
    "Reviewer verdicts, by application, tier, verdict and resulting status",
    ("application", "tier", "verdict", "status"),
    registry=REGISTRY,
)
TIME_TO_VERDICT = Histogram(
    "hitl_time_to_verdict_seconds",
    "From a decision's creation to its final human verdict",
    ("application", "tier"),
    buckets=(1, 10, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600),
    registry=REGISTRY,
)
MODEL_LATENCY = Histogram(
    "hitl_model_latency_seconds",
    "Model call latency, by backend and result",
    ("backend", "result"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
RPC_ERRORS = Counter(
    "hitl_rpc_errors",
    "gRPC calls that ended with an error, by method and status code",
    ("method", "code"),
    registry=REGISTRY,
)
CHAT_TOKENS = Counter(
    "hitl_chat_tokens",
    "Tokens the chat models used, by application and kind (prompt or completion)",
    ("application", "kind"),
    registry=REGISTRY,
)
MODEL_VERSION_MISMATCHES = Counter(
    "hitl_model_version_mismatches",
    "Model server answers (or readiness checks) reporting another model version than the "
    "pinned one, by backend and where it was seen (infer, ready)",
    ("backend", "where"),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "hitl_review_queue_depth",
    "Open review tasks, by queue kind and tier",
    ("kind", "tier"),
    registry=REGISTRY,
)
QUEUE_AGE = Gauge(
    "hitl_review_queue_oldest_age_seconds",
    "Age of the oldest open review task, by queue kind and tier",
    ("kind", "tier"),
    registry=REGISTRY,
)

MODEL_RATE = Gauge(
    "hitl_model_rate",
    "A monitored rate of a model version over its policy window (or 24 h), by rate",
    ("backend", "model", "version", "rate"),
    registry=REGISTRY,
)
MODEL_RATE_LOWER = Gauge(
    "hitl_model_rate_lower_bound",
    "Lower end of the 95% Wilson interval of a monitored rate (what a threshold is tested on)",
    ("backend", "model", "version", "rate"),
    registry=REGISTRY,
)
MODEL_PSI = Gauge(
    "hitl_model_psi",
    "Population stability index of a model version's numeric output against its reference",
    ("backend", "model", "version", "field"),
    registry=REGISTRY,
)
MODEL_BREACHES = Counter(
    "hitl_model_breaches",
    "Breaches of a model version's monitoring threshold acted on by this replica",
    ("backend", "model", "version", "rate", "action"),
    registry=REGISTRY,
)
MODEL_ESCALATED = Gauge(
    "hitl_model_escalated",
    "1 while a model version is escalated (every decision on it held for review)",
    ("backend", "model", "version"),
    registry=REGISTRY,
)

_decisions: dict[tuple[str, str, str], Counter] = {}
_queue_labels: set[tuple[str, str]] = set()
_latency: dict[tuple[str, str], Histogram] = {}


def decision_created(application: str, tier: str, outcome: str) -> None:
    key = (application, tier, outcome)
    child = _decisions.get(key)
    if child is None:
        child = _decisions[key] = DECISIONS.labels(*key)
    child.inc()


def model_latency(backend: str, result: str, seconds: float) -> None:
    key = (backend, result)
    child = _latency.get(key)
    if child is None:
        child = _latency[key] = MODEL_LATENCY.labels(*key)
    child.observe(seconds)


def verdict(
    application: str,
    tier: str,
    verdict: str,
    status: str,
    created_at: datetime,
    now: datetime,
    final: bool,
) -> None:
    VERDICTS.labels(application, tier, verdict, status).inc()
    if final:
        TIME_TO_VERDICT.labels(application, tier).observe((now - created_at).total_seconds())


def chat_tokens(application: str, kind: str, tokens: int) -> None:
    CHAT_TOKENS.labels(application, kind).inc(tokens)


def model_version_mismatch(backend: str, where: str) -> None:
    MODEL_VERSION_MISMATCHES.labels(backend, where).inc()


def rpc_error(method: str, code: str) -> None:
    RPC_ERRORS.labels(method, code).inc()


def set_queue(kind: str, stats: Iterable[tuple[str, int, datetime]], now: datetime) -> None:
    """Replace the queue gauges of ``kind`` from ``(tier, open tasks, oldest created_at)``."""
    depth: dict[str, int] = {}
    oldest: dict[str, datetime] = {}
    for tier, n, created in stats:
        depth[tier] = n
        oldest[tier] = created
    for k, tier in _queue_labels:
        if k == kind and tier not in depth:  # an emptied queue reads 0, not its last value
            QUEUE_DEPTH.labels(kind, tier).set(0)
            QUEUE_AGE.labels(kind, tier).set(0)
    for tier, n in depth.items():
        _queue_labels.add((kind, tier))
        QUEUE_DEPTH.labels(kind, tier).set(n)
        QUEUE_AGE.labels(kind, tier).set((now - oldest[tier]).total_seconds())


def model_rate(key: tuple[str, str, str], rate: str, value: float, lower: float) -> None:
    """A monitored rate of model version ``key`` (backend, model, version) and its bound."""
    MODEL_RATE.labels(*key, rate).set(value)
    MODEL_RATE_LOWER.labels(*key, rate).set(lower)


def model_psi(key: tuple[str, str, str], field: str, value: float) -> None:
    MODEL_PSI.labels(*key, field).set(value)


def model_breach(key: tuple[str, str, str], rate: str, action: str) -> None:
    MODEL_BREACHES.labels(*key, rate, action).inc()


def model_escalated(key: tuple[str, str, str], escalated: bool) -> None:
    MODEL_ESCALATED.labels(*key).set(1 if escalated else 0)


def render() -> bytes:
    return generate_latest(REGISTRY)
