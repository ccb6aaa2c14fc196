"""Unmasking personal data through the reviewer UI: the audit trail records only what was shown."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.types import Role, Status

PASSWORD = "correct horse battery"
NAME = "Erika Mustermann"
HELD = {"score": 0.5, "customer": {"name": NAME, "age": 41.0}}
AUTO = {"score": 0.9, "customer": {"name": NAME, "age": 41.0}}
"""Approved by the model at once: a closed decision with no review item."""
Login = Callable[[str, Role, tuple[str, ...] | None], Awaitable[httpx.AsyncClient]]


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return match[1]


@pytest.fixture
async def login(gateway: Gateway) -> AsyncIterator[Login]:
    """Sign in through the UI's own login form; one cookie jar per person."""
    clients: list[httpx.AsyncClient] = []

    async def sign_in(name: str, role: Role, groups: tuple[str, ...] | None) -> httpx.AsyncClient:
        await gateway.accounts.create(name, role, PASSWORD, groups)
        web = httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}")
        clients.append(web)
        form = {"csrf": _csrf(await web.get("/ui/login")), "name": name, "password": PASSWORD}
        assert (await web.post("/ui/login", data=form)).status_code == 303
        return web

    yield sign_in
    for web in clients:
        await web.aclose()


async def _unmask(web: httpx.AsyncClient, decision_id: str) -> httpx.Response:
    """Press "Show personal data" as the item page's form does (the queue page's token)."""
    csrf = _csrf(await web.get("/ui/"))
    return await web.post(f"/ui/items/{decision_id}/unmask", data={"csrf": csrf})


async def _unmasked_by(gateway: Gateway, decision_id: str) -> list[object]:
    events = await gateway.store.audit_events_for(decision_id)
    return [e.actor for e in events if e.type == "decision.unmasked"]


async def test_senior_outside_the_items_groups_is_refused_and_nothing_is_recorded(
    gateway: Gateway, client: AsyncGatewayClient, login: Login
) -> None:
    """A senior of another group gets 403 and no data; the trail holds no unmasking by them."""
    held = await client.decide("t-echo", HELD)
    assert held.status is Status.PENDING_REVIEW
    outsider = await login("olga", Role.SENIOR, ("fraud-desk",))
    resp = await _unmask(outsider, held.id)
    assert resp.status_code == 403
    assert NAME not in resp.text
    assert await _unmasked_by(gateway, held.id) == []

    member = await login("sam", Role.SENIOR, None)  # the senior group: allowed, and recorded
    resp = await _unmask(member, held.id)
    assert resp.status_code == 200 and NAME in resp.text
    assert await _unmasked_by(gateway, held.id) == ["user:sam"]


async def test_unmasking_a_closed_automatic_decision_is_refused_and_nothing_is_recorded(
    gateway: Gateway, client: AsyncGatewayClient, login: Login
) -> None:
    """A senior asking for a closed automatic decision gets 404; the trail holds no unmasking."""
    auto = await client.decide("t-echo", AUTO)
    assert auto.status is Status.APPROVED
    senior = await login("sam", Role.SENIOR, None)
    resp = await _unmask(senior, auto.id)
    assert resp.status_code == 404
    assert NAME not in resp.text
    events = await gateway.store.audit_events_for(auto.id)
    assert [e.type for e in events] == ["decision.created"]

    auditor = await login("audrey", Role.AUDITOR, None)  # auditors read every decision
    resp = await _unmask(auditor, auto.id)
    assert resp.status_code == 200 and NAME in resp.text
    assert await _unmasked_by(gateway, auto.id) == ["user:audrey"]
