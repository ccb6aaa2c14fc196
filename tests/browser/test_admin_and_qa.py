"""The kill-switch page and the QA queue, driven through real Chromium."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from gateway.types import Role, Status
from tests.browser.conftest import login
from tests.browser.gatewaythread import ADMIN_PASSWORD, GatewayThread

PageFactory = Callable[[], Page]


def test_admin_pauses_an_application_then_resumes_it(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """Paused, a would-be automatic approval is held for review; resumed, it flows again."""
    page = new_page()
    login(page, gw.url, "admin", ADMIN_PASSWORD)
    page.click("text=Kill switch")
    row = page.locator("tr[data-switch='application:t-echo']")
    expect(row.locator("td").nth(2)).to_have_text("running")
    row.locator("input[name=reason]").fill("model drift <b>suspected</b>")
    row.locator("button[value=pause]").click()
    expect(page.locator(".flash.ok")).to_contain_text("application t-echo paused")
    row = page.locator("tr[data-switch='application:t-echo']")
    expect(row.locator("td").nth(2)).to_have_text("paused")
    expect(row).to_contain_text("user:admin")
    expect(row).to_contain_text("model drift <b>suspected</b>")  # shown as text, not markup

    held = gw.decide("t-echo", {"score": 0.95})
    assert held.status is Status.PENDING_REVIEW and held.rule == "paused"

    row.locator("button[value=resume]").click()
    expect(page.locator(".flash.ok")).to_contain_text("application t-echo resumed")
    expect(page.locator("tr[data-switch='application:t-echo'] td").nth(2)).to_have_text("running")
    assert gw.decide("t-echo", {"score": 0.95}).status is Status.APPROVED
    events = gw.call(gw.gateway.store.audit_events(limit=100))
    changes = [e for e in events if e.type.startswith("switch.")]
    assert [e.type for e in changes] == ["switch.paused", "switch.resumed"]
    assert changes[0].actor == "user:admin"


def test_only_admins_reach_the_kill_switch(gw: GatewayThread, new_page: PageFactory) -> None:
    """A reviewer has no kill-switch link and is refused the page and the form post."""
    gw.add_user("rita", Role.REVIEWER)
    page = new_page()
    login(page, gw.url, "rita")
    expect(page.locator("text=Kill switch")).to_have_count(0)
    page.goto(f"{gw.url}/ui/admin/switches")
    expect(page.locator("[data-testid=error]")).to_contain_text("only admins")
    token = page.locator("input[name=csrf]").first.input_value()
    resp = page.request.post(
        f"{gw.url}/ui/admin/switches",
        form={"csrf": token, "kind": "application", "name": "t-echo", "action": "pause"},
    )
    assert resp.status == 403
    assert not gw.gateway.switches.is_paused("application", "t-echo")


def test_qa_disagreement_is_recorded_and_the_decision_stands(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """A sampled automatic decision shows in the QA queue; disagreeing needs a reason and
    is recorded, while the decision already returned keeps its status and output."""
    gw.add_user("rita", Role.REVIEWER)
    decision = gw.decide("t-sampled", {"score": 0.7})
    assert decision.status is Status.APPROVED
    page = new_page()
    login(page, gw.url, "rita")
    page.goto(f"{gw.url}/ui/")
    expect(page.locator("table.queue tr[data-decision]")).to_have_count(0)
    page.click("nav >> text=QA")
    row = page.locator(f"table.queue tr[data-decision='{decision.id}']")
    expect(row).to_have_count(1)
    row.locator("a").click()
    expect(page.locator("[data-testid=status]")).to_have_text("APPROVED")
    page.click("button[value=disagree]")
    expect(page.locator(".flash.error")).to_contain_text("reason")
    assert gw.call(gw.gateway.store.qa_reviews_for(decision.id)) == []

    page.fill("textarea[name=reason]", "income looks misreported")
    page.click("button[value=disagree]")
    expect(page.locator(".flash.ok")).to_contain_text(f"QA opinion on {decision.id} recorded")
    expect(page.locator("table.queue tr[data-decision]")).to_have_count(0)

    qa = gw.call(gw.gateway.store.qa_reviews_for(decision.id))
    assert [(who, agree, reason) for who, _, agree, reason, _ in qa] == [
        ("rita", False, "income looks misreported")
    ]
    stored = gw.call(gw.gateway.store.get_decision(decision.id))
    assert stored is not None
    assert stored.status is Status.APPROVED and stored.final_output == decision.final_output
    assert not stored.reviews
    events = gw.call(gw.gateway.store.audit_events_for(decision.id))
    assert events[-1].type == "decision.qa_reviewed"
    assert events[-1].payload["agree"] is False


def test_a_pause_without_a_reason_is_refused(gw: GatewayThread, new_page: PageFactory) -> None:
    """The form asks for a reason, and a post without one (the browser's check bypassed) is
    refused naming the field: the trail must say why decisions stopped flowing."""
    page = new_page()
    login(page, gw.url, "admin", ADMIN_PASSWORD)
    page.click("text=Kill switch")
    row = page.locator("tr[data-switch='application:t-echo']")
    assert row.locator("input[name=reason]").get_attribute("required") is not None
    token = page.locator("input[name=csrf]").first.input_value()
    resp = page.request.post(
        f"{gw.url}/ui/admin/switches",
        form={"csrf": token, "kind": "application", "name": "t-echo", "action": "pause"},
    )
    assert resp.status == 400
    assert "reason" in resp.text()
    assert not gw.gateway.switches.is_paused("application", "t-echo")
