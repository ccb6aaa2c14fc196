"""Maker-checker through real Chromium: the person a decision was requested for (the gRPC
Decide's requested_by) never sees, claims or decides it in the reviewer UI."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from gateway.client import GatewayClient
from gateway.types import Decision, Role, Status, TaskKind
from tests.browser.conftest import login
from tests.browser.gatewaythread import GatewayThread

PageFactory = Callable[[], Page]


def _decide_for(gw: GatewayThread, requested_by: str) -> Decision:
    """A decision held for review, asked through gRPC on behalf of ``requested_by``."""
    target = f"127.0.0.1:{gw.gateway.grpc_port}"
    with GatewayClient(target, api_key=gw.api_key) as client:
        held = client.decide("t-echo", {"score": 0.5}, requested_by=requested_by)
    assert held.status is Status.PENDING_REVIEW and held.requested_by == requested_by
    return held


def test_the_requester_cannot_see_claim_or_decide_their_own_item(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """Maria's own request is missing from her queue, its page and a posted verdict are refused
    naming the rule; Olga, another reviewer, decides it."""
    gw.add_user("maria", Role.REVIEWER)
    gw.add_user("olga", Role.REVIEWER)
    mine = _decide_for(gw, "maria")
    other = gw.decide("t-echo", {"score": 0.5})

    maria = new_page()
    login(maria, gw.url, "maria")
    maria.goto(f"{gw.url}/ui/")
    rows = maria.locator("table.queue tr[data-decision]")
    expect(rows).to_have_count(1)
    expect(rows).to_have_attribute("data-decision", other.id)
    expect(maria.locator("[data-testid=counts]")).to_contain_text("1 open")

    response = maria.goto(f"{gw.url}/ui/items/{mine.id}")
    assert response is not None and response.status == 403
    expect(maria.locator("[data-testid=error]")).to_contain_text(
        "maker-checker: maria requested decision"
    )
    expect(maria.locator("[data-testid=approve]")).to_have_count(0)

    token = maria.locator("input[name=csrf]").first.input_value()
    for verdict in ("approve", "reject"):
        posted = maria.request.post(
            f"{gw.url}/ui/items/{mine.id}/verdict",
            form={"csrf": token, "verdict": verdict, "reason": "looks fine to me"},
            max_redirects=0,
        )
        assert posted.status == 303  # back to the item, where the refusal is shown
    maria.goto(f"{gw.url}/ui/items/{mine.id}")
    expect(maria.locator(".flash.error").first).to_contain_text("maker-checker")
    stored = gw.call(gw.gateway.store.get_decision(mine.id))
    assert stored is not None and stored.status is Status.PENDING_REVIEW and not stored.reviews
    task = gw.call(gw.gateway.store.open_task(mine.id, TaskKind.DECISION))
    assert task is not None and task.claimed_by is None

    olga = new_page()
    login(olga, gw.url, "olga")
    olga.goto(f"{gw.url}/ui/items/{mine.id}")
    expect(olga.locator("[data-testid=claim]")).to_contain_text("Claimed by you")
    olga.click("[data-testid=approve]")
    expect(olga.locator(".flash.ok")).to_contain_text("APPROVED")
