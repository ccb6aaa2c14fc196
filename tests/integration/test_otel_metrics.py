"""Prometheus metrics at /metrics on the HTTP port."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.core.reviews import Reviewer
from gateway.types import Verdict


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


async def _scrape(gateway: Gateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as http:
        resp = await http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return _samples(resp.text)


def _get(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str):  # type: ignore[no-untyped-def]
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_follow_decisions_reviews_and_errors(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """Decisions, the review queue, verdicts, model latency and errors show up in /metrics."""
    before = await _scrape(gateway)
    held = await client.decide("t-echo", {"score": 0.5})
    await client.decide("t-echo", {"score": 0.9})
    with pytest.raises(GatewayCallError):
        await client.decide("no-such-app", {"score": 0.9})
    after = await _scrape(gateway)

    def delta(name: str, **labels: str) -> float:
        return float(_get(after, name, **labels) - _get(before, name, **labels))

    assert (
        delta("hitl_decisions_total", application="t-echo", tier="limited", outcome="APPROVED") == 1
    )
    assert (
        delta(
            "hitl_decisions_total", application="t-echo", tier="limited", outcome="PENDING_REVIEW"
        )
        == 1
    )
    assert delta("hitl_model_latency_seconds_count", backend="echo", result="ok") == 2
    assert (
        delta(
            "hitl_rpc_errors_total",
            method="hitl.gateway.v1.DecisionGateway/Decide",
            code="INVALID_ARGUMENT",
        )
        == 1
    )
    assert _get(after, "hitl_review_queue_depth", kind="decision", tier="limited") >= 1
    assert _get(after, "hitl_review_queue_oldest_age_seconds", kind="decision", tier="limited") >= 0

    await gateway.reviews.submit(held.id, Reviewer("alice", "reviewer"), Verdict.APPROVE)
    done = await _scrape(gateway)
    assert _get(done, "hitl_review_queue_depth", kind="decision", tier="limited") == 0
    assert (
        _get(done, "hitl_time_to_verdict_seconds_count", application="t-echo", tier="limited")
        - _get(after, "hitl_time_to_verdict_seconds_count", application="t-echo", tier="limited")
        == 1
    )
    assert (
        _get(
            done,
            "hitl_verdicts_total",
            application="t-echo",
            tier="limited",
            verdict="approve",
            status="APPROVED",
        )
        >= 1
    )
