"""Shadow mode: a candidate evaluated on every live decision without acting; the answers are
the same with and without it, ``policy shadow-report`` lists exactly the decisions it would
have decided otherwise (the test computes them itself), Prometheus counts them by application
and rule; promotion is ``policy apply``. And ``policy replay --target`` on a running gateway."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.keys import generate_secrets
from gateway.types import Status
from tests.integration.serverproc import cli
from tests.integration.test_policy_apply import admin_key, candidate
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server"]


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The gateway's settings on each store."""
    if request.param == "sqlite":
        return settings
    dsn: str = request.getfixturevalue("pg_dsn")
    return replace(settings, store=dsn, **generate_secrets())


SCORES = [round(i / 200, 3) for i in range(200)]
"""Every band: rejected (< 0.2), held (0.2-0.8), approved (>= 0.8) under the shipped line."""


def _lowered(score: float) -> bool:
    """Decided otherwise under the candidate (approve from 0.6): held now, approved there."""
    return 0.6 <= score < 0.8


async def _run(client: AsyncGatewayClient) -> list[tuple[str, Status]]:
    """Every score decided, 16 at a time; (decision id, status) in score order."""
    gate = asyncio.Semaphore(16)

    async def one(score: float) -> tuple[str, Status]:
        async with gate:
            d = await client.decide("t-echo", {"score": score})
            return d.id, d.status

    return list(await asyncio.gather(*(one(s) for s in SCORES)))


async def _cli(gateway: Gateway, *args: str) -> tuple[int, str, str]:
    key = await admin_key(gateway)
    target = ["--target", f"127.0.0.1:{gateway.grpc_port}", "--key", key]
    done = await asyncio.to_thread(cli, "policy", *args, *target)
    return done.returncode, done.stdout, done.stderr


async def test_a_shadow_never_changes_an_answer_and_reports_exactly_its_disagreements(
    gateway: Gateway, client: AsyncGatewayClient, settings: Settings, tmp_path: Path
) -> None:
    """Same answers with and without the shadow; the report and the metric name exactly the
    decisions whose score lies between the two approve lines; promotion clears the shadow."""
    before = await _run(client)
    lowered = candidate(settings.policies, tmp_path / "lowered")
    code, out, err = await _cli(gateway, "apply", str(lowered), "--shadow")
    assert code == 0, err
    shadow = out.split()[0]
    assert gateway.policy.shadow is not None and gateway.policy.shadow.version == shadow
    enforced = gateway.policies.version
    assert shadow != enforced

    after = await _run(client)
    assert [s for _, s in after] == [s for _, s in before]
    expected = {i for (i, _), score in zip(after, SCORES, strict=True) if _lowered(score)}
    assert expected

    deadline = time.monotonic() + 10
    while True:
        code, out, err = await _cli(gateway, "shadow-report", "--format", "json")
        assert code == 0, err
        report = json.loads(out)
        listed = {d["decision_id"] for d in report["disagreements"]}
        if listed == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert listed == expected
    assert report["shadow"] == shadow
    assert report["counts"] == {"t-echo": {"route[0]": len(expected)}}
    assert {d["change"] for d in report["disagreements"]} == {"review->approve"}

    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{gateway.http_port}/metrics")).text
    line = 'hitl_shadow_disagreements_total{application="t-echo",rule="route[0]"}'
    counted = [ln for ln in text.splitlines() if ln.startswith(line)]
    assert counted and float(counted[0].split()[-1]) >= len(expected)

    code, out, err = await _cli(gateway, "apply", str(lowered))
    assert code == 0, err
    assert gateway.policies.version == shadow and gateway.policy.shadow is None
    code, out, _ = await _cli(gateway, "clear-shadow")
    assert (code, out.strip()) == (0, "no shadow policy was set")


async def test_replay_through_a_running_gateway_reports_the_changes(
    gateway: Gateway, client: AsyncGatewayClient, settings: Settings, tmp_path: Path
) -> None:
    """``policy replay --target``: the gateway's own decisions under a candidate, exit 3 and
    exactly the expected counts; an unchanged candidate exits 0."""
    made = await _run(client)
    expected = sum(1 for s in SCORES if _lowered(s))
    lowered = candidate(settings.policies, tmp_path / "lowered")
    since = ["--since", "2020-01-01", "--format", "json"]
    code, out, err = await _cli(gateway, "replay", str(lowered), *since)
    assert code == 3, err
    report = json.loads(out)["applications"]["t-echo"]
    assert report["replayed"] == len(made)
    assert report["changed"] == expected
    assert report["actions"]["review->approve"] == expected
    code, out, err = await _cli(gateway, "replay", str(settings.policies), *since)
    assert code == 0, err
