"""The auditor web pages over the real HTTP server: search, a decision's timeline, chain status."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.core.reviews import Reviewer
from gateway.store import sqlite_path
from gateway.types import Role, Status, Verdict

HELD = {"score": 0.5}
PASSWORD = "correct horse battery"
Login = Callable[[str, Role], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def login(gateway: Gateway) -> AsyncIterator[Login]:
    """Sign in through the UI's own login form; one cookie jar per person."""
    clients: list[httpx.AsyncClient] = []

    async def sign_in(name: str, role: Role) -> httpx.AsyncClient:
        await gateway.accounts.create(name, role, PASSWORD, None)
        web = httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}")
        clients.append(web)
        form = await web.get("/ui/login")
        match = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert match is not None
        resp = await web.post(
            "/ui/login", data={"csrf": match[1], "name": name, "password": PASSWORD}
        )
        assert resp.status_code == 303, resp.text
        return web

    yield sign_in
    for web in clients:
        await web.aclose()


async def _held_and_approved(gateway: Gateway, client: AsyncGatewayClient, subject: str) -> str:
    d = await client.decide("t-echo", HELD, subject_ref=subject)
    assert d.status is Status.PENDING_REVIEW
    await gateway.reviews.submit(d.id, Reviewer("alice", "reviewer"), Verdict.APPROVE)
    return d.id


async def test_search_finds_decisions_by_each_filter(
    gateway: Gateway, client: AsyncGatewayClient, login: Login
) -> None:
    """Search by subject, application, outcome, id and time range lists each decision once."""
    approved = await _held_and_approved(gateway, client, "cust-7")
    pending = (await client.decide("t-echo", HELD, subject_ref="cust-8")).id
    web = await login("ann", Role.AUDITOR)

    async def found(**params: str) -> set[str]:
        resp = await web.get("/ui/audit", params=params)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-security-policy"].startswith("default-src 'none'")
        return set(re.findall(r'<tr data-decision="([^"]+)"', resp.text))

    assert await found(subject_ref="cust-7") == {approved}
    assert await found(application="t-echo") == {approved, pending}
    assert await found(outcome="APPROVED") == {approved}
    assert await found(decision_id=pending) == {pending}
    assert await found(application="t-echo", since="2000-01-01T00:00") == {approved, pending}
    assert await found(application="t-echo", until="2000-01-01T00:00") == set()
    assert "No decision matches" in (await web.get("/ui/audit?subject_ref=none")).text


async def test_bad_search_names_the_field_and_escapes_input(gateway: Gateway, login: Login) -> None:
    """A bad time or inverted range is a 400 naming the field; typed markup comes back escaped."""
    web = await login("ann", Role.AUDITOR)
    resp = await web.get("/ui/audit", params={"since": "yesterday"})
    assert resp.status_code == 400 and "since" in resp.text
    resp = await web.get(
        "/ui/audit", params={"since": "2025-02-01T00:00", "until": "2025-01-01T00:00"}
    )
    assert resp.status_code == 400 and "until" in resp.text and "inverted" in resp.text
    resp = await web.get("/ui/audit", params={"outcome": "MAYBE"})
    assert resp.status_code == 400 and "outcome" in resp.text
    resp = await web.get("/ui/audit", params={"decision_id": "<script>alert(1)</script>"})
    assert resp.status_code == 200
    assert "<script>alert" not in resp.text and "&lt;script&gt;alert(1)" in resp.text


async def test_trail_is_a_timeline_with_chain_status(
    gateway: Gateway, client: AsyncGatewayClient, login: Login
) -> None:
    """The timeline shows each event in order with actor, trace id, digest and chain ok."""
    decision_id = await _held_and_approved(gateway, client, "cust-7")
    web = await login("root", Role.ADMIN)
    resp = await web.get(f"/ui/audit/decisions/{decision_id}")
    assert resp.status_code == 200, resp.text
    events = await gateway.audit.trail(decision_id)
    types = re.findall(r'data-type="([^"]+)"', resp.text)
    assert types == [e.type for e in events] == ["decision.created", "decision.reviewed"]
    for ev in events:
        assert ev.trace_id in resp.text and ev.payload_digest in resp.text
    assert "user:alice" in resp.text and events[0].actor in resp.text
    statuses = re.findall(r'data-testid="chain"[^>]*>\s*([^<]*?)\s*</dd>', resp.text)
    assert statuses == ["ok", "ok"]
    missing = await web.get("/ui/audit/decisions/nope")
    assert missing.status_code == 404 and "nope" in missing.text


async def test_tampered_event_is_named_on_trail_and_chain_pages(
    gateway: Gateway, client: AsyncGatewayClient, login: Login
) -> None:
    """An edited column shows as broken on its trail event and as the chain's first bad event."""
    decision_id = await _held_and_approved(gateway, client, "cust-7")
    web = await login("ann", Role.AUDITOR)
    await gateway._checkpointer.checkpoint_now()  # type: ignore[union-attr]
    chain = await web.get("/ui/audit/chain")
    assert "The chain verifies." in chain.text
    head = [e async for e in gateway.audit.export()][-1]
    assert (
        f"seq 1 to {head.seq}" in chain.text
        and f"seq {head.seq}, hash <code>{head.hash}</code>" in chain.text
    )
    assert re.search(r'data-testid="first-bad">\s*none', chain.text)

    created = (await gateway.audit.trail(decision_id))[0]
    conn = sqlite3.connect(sqlite_path(gateway.settings.store_url))
    with conn:  # someone with write access to the file drops the append-only guard first
        conn.execute("DROP TRIGGER audit_events_only_erase")
        conn.execute("UPDATE audit_events SET actor = 'app:mallory' WHERE seq = ?", (created.seq,))
    conn.close()
    trail = await web.get(f"/ui/audit/decisions/{decision_id}")
    statuses = re.findall(r'data-testid="chain"[^>]*>\s*([^<]*?)\s*</dd>', trail.text)
    assert statuses[0].startswith("broken:") and "actor" in statuses[0]
    assert statuses[1] == "ok"
    chain = await web.get("/ui/audit/chain")
    assert "The chain does not verify." in chain.text
    assert f"seq {created.seq}:" in chain.text and "actor" in chain.text


async def test_reviewers_are_refused_and_strangers_sent_to_sign_in(
    gateway: Gateway, login: Login
) -> None:
    """A reviewer or senior gets 403 on every audit page; no session redirects to sign-in."""
    for name, role in (("rita", Role.REVIEWER), ("sam", Role.SENIOR)):
        web = await login(name, role)
        for path in ("/ui/audit", "/ui/audit/chain", "/ui/audit/decisions/x"):
            resp = await web.get(path)
            assert resp.status_code == 403, (role, path)
            assert "auditors and admins" in resp.text
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as anon:
        resp = await anon.get("/ui/audit/chain")
        assert resp.status_code == 303 and resp.headers["location"].endswith("/ui/login")
