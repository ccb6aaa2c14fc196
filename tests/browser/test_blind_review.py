"""Blind four-eyes review through real Chromium: the second reviewer sees the first verdict only
after giving their own, on the item page, its rows and the queue."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from gateway.types import Role, Status
from tests.browser.conftest import login
from tests.browser.gatewaythread import GatewayThread

PageFactory = Callable[[], Page]
BLIND_TIER = """
  - name: blind
    review: {approvals: 2, groups: [reviewers], blind: true}
"""
SECRET = "called the employer: income confirmed"
"""The first reviewer's reason, which the second must not see before deciding."""


@pytest.fixture
def policies_dir(policies_dir: Path) -> Path:
    """The browser tests' policies plus a blind two-person tier and an application on it."""
    shutil.copy(Path(__file__).parent / "policies" / "blind-apps.yaml", policies_dir)
    with (policies_dir / "tiers.yaml").open("a") as f:
        f.write(BLIND_TIER)
    return policies_dir


def _open_only_item(page: Page, base: str) -> str:
    page.goto(f"{base}/ui/")
    row = page.locator("table.queue tr[data-decision]")
    expect(row).to_have_count(1)
    decision_id = row.get_attribute("data-decision")
    assert decision_id
    row.locator("a").click()
    expect(page.locator("[data-testid=claim]")).to_contain_text("Claimed by you")
    return decision_id


def test_blind_tier_hides_the_first_verdict_from_the_second_reviewer(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """Bob sees neither Ann's override nor her reason until he has given his verdict; his
    differing verdict starts agreement again, and Cat's agreeing one decides."""
    for name in ("ann", "bob", "cat"):
        gw.add_user(name, Role.REVIEWER)
    waiting = gw.decide_in_background("b-blind", {"score": 0.5}, wait=60)

    ann = new_page()
    login(ann, gw.url, "ann")
    decision_id = _open_only_item(ann, gw.url)
    expect(ann.locator("[data-testid=blind]")).to_contain_text("Blind review")
    ann.fill("[data-testid=out-score]", "0.95")
    ann.fill("[data-testid=override-reason]", SECRET)
    ann.click("[data-testid=override]")
    expect(ann.locator(".flash.ok")).to_contain_text("1 of 2 people agree on override")

    bob = new_page()
    login(bob, gw.url, "bob")
    bob.goto(f"{gw.url}/ui/")
    queue = bob.locator("table.queue")
    expect(queue.locator("tr[data-decision]")).to_have_count(1)
    expect(queue).not_to_contain_text("ann")
    expect(queue).not_to_contain_text("override")
    rows = bob.request.get(f"{gw.url}/ui/?partial=1").text()
    assert "ann" not in rows and "override" not in rows
    _open_only_item(bob, gw.url)
    expect(bob.locator("[data-testid=blind]")).to_contain_text("once you have given yours")
    main = bob.locator("main")
    for hidden in ("ann", SECRET, "0.95", "override by"):
        expect(main).not_to_contain_text(hidden)
    expect(bob.locator("[data-testid=approvals]")).to_have_count(0)
    expect(bob.locator("[data-testid=out-score]")).to_have_value("0.5")  # not pre-filled
    assert SECRET not in bob.request.get(f"{gw.url}/ui/items/{decision_id}").text()

    bob.click("[data-testid=approve]")
    expect(bob.locator(".flash.ok")).to_contain_text("1 of 2 people agree on approve")
    assert not waiting.done()
    bob.goto(f"{gw.url}/ui/items/{decision_id}")  # now he has given his, he sees hers
    reviews = bob.locator("[data-testid=reviews]")
    expect(reviews).to_contain_text("override by ann")
    expect(reviews).to_contain_text(SECRET)
    expect(reviews).to_contain_text("approve by bob")

    cat = new_page()
    login(cat, gw.url, "cat")
    _open_only_item(cat, gw.url)
    expect(cat.locator("main")).not_to_contain_text("approve by bob")
    cat.click("[data-testid=approve]")
    answered = waiting.result(timeout=10)
    assert answered.status is Status.APPROVED
    assert [r.reviewer for r in answered.reviews] == ["ann", "bob", "cat"]
