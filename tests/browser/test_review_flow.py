"""The reviewer's day in a real browser: sign in, watch the queue, claim, decide."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from gateway.types import Role, Status
from tests.browser.conftest import login
from tests.browser.gatewaythread import GatewayThread

PageFactory = Callable[[], Page]


def test_approve_answers_the_blocked_decide_call(gw: GatewayThread, new_page: PageFactory) -> None:
    """A held decision appears live in the queue; one approve click answers the waiting caller."""
    gw.add_user("rita", Role.REVIEWER)
    page = new_page()
    login(page, gw.url, "rita")
    expect(page.locator("[data-testid=counts]")).to_contain_text("0 open")
    page.wait_for_function("document.body.getAttribute('data-live') === 'open'")

    waiting = gw.decide_in_background("t-echo", {"score": 0.5}, wait=30)
    row = page.locator("table.queue tr[data-decision]")
    expect(row).to_have_count(1)  # appeared without a reload
    decision_id = row.get_attribute("data-decision")
    assert not waiting.done()

    row.locator("a").click()
    expect(page.locator("[data-testid=claim]")).to_contain_text("Claimed by you")
    page.click("[data-testid=approve]")
    expect(page.locator(".flash.ok")).to_contain_text("APPROVED")

    answered = waiting.result(timeout=10)
    assert answered.id == decision_id
    assert answered.status is Status.APPROVED
    assert answered.reviews[0].reviewer == "rita"
