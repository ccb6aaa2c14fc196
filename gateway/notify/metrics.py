"""Prometheus metrics of the outbox, in the gateway's registry (`gateway.telemetry.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from gateway.telemetry.metrics import REGISTRY

PENDING = Gauge(
    "hitl_outbox_pending",
    "Outbox messages still to deliver (queued, or waiting for a retry), as last seen",
    registry=REGISTRY,
)
OLDEST_PENDING = Gauge(
    "hitl_outbox_oldest_pending_seconds",
    "Age of the oldest outbox message still to deliver (0: none)",
    registry=REGISTRY,
)
SENT = Counter(
    "hitl_outbox_sent",
    "Outbox messages delivered, by channel and topic",
    ("channel", "topic"),
    registry=REGISTRY,
)
RETRIED = Counter(
    "hitl_outbox_retried",
    "Failed delivery attempts that will be retried, by channel and topic",
    ("channel", "topic"),
    registry=REGISTRY,
)
DEAD = Counter(
    "hitl_outbox_dead",
    "Outbox messages dead-lettered after their retry window, by channel and topic",
    ("channel", "topic"),
    registry=REGISTRY,
)
LATENCY = Histogram(
    "hitl_outbox_delivery_seconds",
    "From a message being queued (with the change that caused it) to its delivery",
    ("channel",),
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
    registry=REGISTRY,
)
