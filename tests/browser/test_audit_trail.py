"""An auditor in a real browser: search a decision and read its trail as a timeline."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from gateway.core.reviews import Reviewer
from gateway.types import Role, Status, Verdict
from tests.browser.conftest import login
from tests.browser.gatewaythread import GatewayThread

PageFactory = Callable[[], Page]


def test_auditor_opens_a_decisions_trail(gw: GatewayThread, new_page: PageFactory) -> None:
    """Searching by subject and clicking the decision shows its events in order, each chain ok."""
    decision = gw.decide("t-echo", {"score": 0.5})
    assert decision.status is Status.PENDING_REVIEW
    gw.call(gw.gateway.reviews.submit(decision.id, Reviewer("alice", "reviewer"), Verdict.APPROVE))
    gw.add_user("ann", Role.AUDITOR)
    page = new_page()
    login(page, gw.url, "ann")
    page.click("header.top nav >> text=Audit")
    page.fill("input[name=application]", "t-echo")
    page.select_option("select[name=outcome]", "APPROVED")
    page.click("[data-testid=audit-search] button[type=submit]")
    page.locator(f"tr[data-decision='{decision.id}'] a").click()

    events = page.locator("[data-testid=timeline] > li")
    expect(events).to_have_count(2)
    expect(events.nth(0)).to_have_attribute("data-type", "decision.created")
    expect(events.nth(1)).to_have_attribute("data-type", "decision.reviewed")
    expect(events.nth(1)).to_contain_text("user:alice")
    expect(events.nth(0)).to_contain_text(decision.trace_id)
    expect(page.locator("[data-testid=chain]")).to_have_text(["ok", "ok"])
    expect(page.locator("[data-testid=trail-summary]")).to_contain_text("every event checks out")
