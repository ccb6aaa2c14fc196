"""Verdicts, four-eyes, refusals and SLA expiry, driven through real Chromium."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from gateway.types import Role, Status
from tests.browser.conftest import login
from tests.browser.gatewaythread import GatewayThread

PageFactory = Callable[[], Page]


def _open_only_item(page: Page, base: str) -> str:
    page.goto(f"{base}/ui/")
    row = page.locator("table.queue tr[data-decision]")
    expect(row).to_have_count(1)
    decision_id = row.get_attribute("data-decision")
    assert decision_id
    row.locator("a").click()
    return decision_id


def test_override_changes_the_output(gw: GatewayThread, new_page: PageFactory) -> None:
    """An override with a reason sends the reviewer's output to the waiting caller."""
    gw.add_user("olga", Role.REVIEWER)
    waiting = gw.decide_in_background("t-echo", {"score": 0.5}, wait=30)
    page = new_page()
    login(page, gw.url, "olga")
    _open_only_item(page, gw.url)
    page.fill("[data-testid=out-score]", "0.95")
    page.fill("[data-testid=override-reason]", "income verified by phone")
    page.click("[data-testid=override]")
    expect(page.locator(".flash.ok")).to_contain_text("OVERRIDDEN")
    answered = waiting.result(timeout=10)
    assert answered.status is Status.OVERRIDDEN
    assert answered.final_output == {"score": 0.95}


def test_override_with_a_bad_field_changes_nothing(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """A non-number for a number field is refused with the field named; the item stays open."""
    gw.add_user("olga", Role.REVIEWER)
    decision = gw.decide("t-echo", {"score": 0.5})
    page = new_page()
    login(page, gw.url, "olga")
    _open_only_item(page, gw.url)
    page.fill("[data-testid=out-score]", "lots")
    page.fill("[data-testid=override-reason]", "x")
    page.click("[data-testid=override]")
    expect(page.locator(".flash.error")).to_contain_text("output.score")
    stored = gw.call(gw.gateway.store.get_decision(decision.id))
    assert stored is not None and stored.status is Status.PENDING_REVIEW


def test_reject_needs_a_reason(gw: GatewayThread, new_page: PageFactory) -> None:
    """Reject without a reason is refused; with one, the caller hears REJECTED and the reason."""
    gw.add_user("rex", Role.REVIEWER)
    waiting = gw.decide_in_background("t-echo", {"score": 0.5}, wait=30)
    page = new_page()
    login(page, gw.url, "rex")
    _open_only_item(page, gw.url)
    page.click("[data-testid=reject]")
    expect(page.locator(".flash.error")).to_contain_text("reason")
    assert not waiting.done()
    page.fill("[data-testid=reject-reason]", "debt ratio understated")
    page.click("[data-testid=reject]")
    answered = waiting.result(timeout=10)
    assert answered.status is Status.REJECTED
    assert answered.reviews[-1].reason == "debt ratio understated"


def test_four_eyes_needs_two_different_seniors(gw: GatewayThread, new_page: PageFactory) -> None:
    """A high-tier item needs two approvals by two people; the second sees the first."""
    gw.add_user("sam", Role.SENIOR)
    gw.add_user("sue", Role.SENIOR)
    waiting = gw.decide_in_background("t-echo", {"score": 0.5, "vip": True}, wait=30)
    sam = new_page()
    login(sam, gw.url, "sam")
    decision_id = _open_only_item(sam, gw.url)
    expect(sam.locator("[data-testid=approvals]")).to_contain_text("0 of 2")
    sam.click("[data-testid=approve]")
    expect(sam.locator(".flash.ok")).to_contain_text("1 of 2 people agree on approve")
    expect(sam.locator(".flash.ok")).to_contain_text("different reviewer")
    assert not waiting.done()

    # The same person cannot give the second, and reading the item again does not hold it.
    sam.goto(f"{gw.url}/ui/items/{decision_id}")
    expect(sam.locator("[data-testid=claim]")).to_contain_text("different reviewer")
    expect(sam.locator("[data-testid=approve]")).to_have_count(0)

    sue = new_page()
    login(sue, gw.url, "sue")
    _open_only_item(sue, gw.url)
    expect(sue.locator("[data-testid=approvals]")).to_contain_text("1 of 2")
    expect(sue.locator("[data-testid=reviews]")).to_contain_text("approve by sam")
    sue.click("[data-testid=approve]")
    answered = waiting.result(timeout=10)
    assert answered.status is Status.APPROVED
    assert [r.reviewer for r in answered.reviews] == ["sam", "sue"]


def test_item_leased_to_another_reviewer_cannot_be_decided(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """While one reviewer holds the item, another sees who has it and cannot decide it."""
    gw.add_user("ann", Role.REVIEWER)
    gw.add_user("bob", Role.REVIEWER)
    decision = gw.decide("t-echo", {"score": 0.5})
    ann = new_page()
    login(ann, gw.url, "ann")
    _open_only_item(ann, gw.url)
    bob = new_page()
    login(bob, gw.url, "bob")
    bob.goto(f"{gw.url}/ui/")
    expect(bob.locator("table.queue tr[data-decision]")).to_have_count(0)
    bob.goto(f"{gw.url}/ui/items/{decision.id}")
    expect(bob.locator("[data-testid=claim]")).to_contain_text("Being reviewed by ann")
    expect(bob.locator("[data-testid=approve]")).to_have_count(0)
    # A hand-made post with bob's own valid token is refused too.
    token = bob.locator("input[name=csrf]").first.input_value()
    resp = bob.request.post(
        f"{gw.url}/ui/items/{decision.id}/verdict",
        form={"csrf": token, "verdict": "approve"},
        max_redirects=0,
    )
    assert resp.status == 303
    stored = gw.call(gw.gateway.store.get_decision(decision.id))
    assert stored is not None and stored.status is Status.PENDING_REVIEW and not stored.reviews


def test_forged_csrf_token_changes_nothing(gw: GatewayThread, new_page: PageFactory) -> None:
    """A verdict posted with a wrong or missing CSRF token is refused with a clear message."""
    gw.add_user("rita", Role.REVIEWER)
    decision = gw.decide("t-echo", {"score": 0.5})
    page = new_page()
    login(page, gw.url, "rita")
    _open_only_item(page, gw.url)
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.value = 'forged')")
    page.click("[data-testid=approve]")
    expect(page.locator("[data-testid=error]")).to_contain_text("security token")
    resp = page.request.post(
        f"{gw.url}/ui/items/{decision.id}/verdict", form={"verdict": "approve"}
    )
    assert resp.status == 403
    stored = gw.call(gw.gateway.store.get_decision(decision.id))
    assert stored is not None and stored.status is Status.PENDING_REVIEW and not stored.reviews


def test_logged_out_post_is_refused(gw: GatewayThread, new_page: PageFactory) -> None:
    """Without a session a verdict post gets 401 and changes nothing."""
    decision = gw.decide("t-echo", {"score": 0.5})
    page = new_page()
    resp = page.request.post(
        f"{gw.url}/ui/items/{decision.id}/verdict", form={"verdict": "approve", "csrf": "x"}
    )
    assert resp.status == 401
    stored = gw.call(gw.gateway.store.get_decision(decision.id))
    assert stored is not None and stored.status is Status.PENDING_REVIEW


def test_script_in_input_and_reason_is_inert(gw: GatewayThread, new_page: PageFactory) -> None:
    """HTML and script in a request field and in a reason are shown as text, never as markup."""
    gw.add_user("rita", Role.REVIEWER)
    gw.add_user("audrey", Role.AUDITOR)
    # The CSP alone would stop the inline script and the handler, so the elements are what tell
    # whether escaping held: markup that became part of the page would be found by its id.
    payload = (
        "<b id=injected>bold</b><img id=injected-img src=x "
        "onerror=\"document.body.dataset.pwned='1'\"><script>window.pwned=1</script>"
    )
    decision = gw.decide("t-echo", {"score": 0.5, "note": payload})
    page = new_page()
    login(page, gw.url, "rita")
    _open_only_item(page, gw.url)
    expect(page.locator("[data-testid=input]")).to_contain_text("<script>window.pwned=1</script>")
    page.fill("[data-testid=reject-reason]", payload)
    page.click("[data-testid=reject]")
    expect(page.locator(".flash.ok")).to_contain_text("REJECTED")
    page.goto(page.url)
    assert page.evaluate("window.pwned === undefined && !document.body.dataset.pwned")

    # After the verdict the reviewer's page is the queue; the closed item's page, which an
    # auditor can open, shows both the input and the reason.
    page = new_page()
    login(page, gw.url, "audrey")
    page.goto(f"{gw.url}/ui/items/{decision.id}")
    expect(page.locator("[data-testid=status]")).to_have_text("REJECTED")
    expect(page.locator("[data-testid=input]").get_by_text(payload, exact=True)).to_be_visible()
    reviews = page.locator("[data-testid=reviews]")
    expect(reviews).to_contain_text("reject by rita (reviewer)")
    expect(reviews).to_contain_text(payload)
    expect(reviews).to_be_visible()
    assert page.locator("#injected").count() == 0
    assert page.locator("#injected-img").count() == 0
    assert (
        page.locator("main script, [data-testid=input] img, [data-testid=reviews] img").count() == 0
    )
    assert page.evaluate("window.pwned === undefined && !document.body.dataset.pwned")


def test_auditor_reads_but_cannot_decide(gw: GatewayThread, new_page: PageFactory) -> None:
    """An auditor sees the item read-only, may unmask (audited), and a posted verdict fails."""
    gw.add_user("audrey", Role.AUDITOR)
    decision = gw.decide(
        "t-echo", {"score": 0.5, "customer": {"name": "Jane Roe", "segment": "retail"}}
    )
    page = new_page()
    login(page, gw.url, "audrey")
    page.goto(f"{gw.url}/ui/items/{decision.id}")
    expect(page.locator("[data-testid=claim]")).to_contain_text("Read only")
    expect(page.locator("[data-testid=input]")).not_to_contain_text("Jane Roe")
    page.click("text=Show personal data")
    expect(page.locator("[data-testid=input]")).to_contain_text("Jane Roe")
    events = gw.call(gw.gateway.store.audit_events_for(decision.id))
    assert any(e.type == "decision.unmasked" and e.actor == "user:audrey" for e in events)

    token = page.locator("input[name=csrf]").first.input_value()
    resp = page.request.post(
        f"{gw.url}/ui/items/{decision.id}/verdict",
        form={"csrf": token, "verdict": "approve"},
        max_redirects=0,
    )
    assert resp.status == 303  # back to the item, with the refusal shown there
    page.goto(f"{gw.url}/ui/items/{decision.id}")
    expect(page.locator(".flash.error")).to_contain_text("may read but not decide")
    stored = gw.call(gw.gateway.store.get_decision(decision.id))
    assert stored is not None and stored.status is Status.PENDING_REVIEW and not stored.reviews


def test_expired_sla_answers_the_caller_expired(gw: GatewayThread, new_page: PageFactory) -> None:
    """Nobody decides within the tier's SLA: the waiting caller hears EXPIRED at once."""
    gw.add_user("rita", Role.REVIEWER)
    page = new_page()
    login(page, gw.url, "rita")
    waiting = gw.decide_in_background("b-quick", {"score": 0.5}, wait=30)
    answered = waiting.result(timeout=10)
    assert answered.status is Status.EXPIRED
    assert answered.final_output is None
    assert any("SLA" in r for r in answered.reasons)
    page.goto(f"{gw.url}/ui/")
    expect(page.locator("table.queue tr[data-decision]")).to_have_count(0)


def test_four_eyes_override_is_confirmed_by_a_second_senior(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """One override on a high-tier item decides nothing; the second senior sees who proposed
    which output, finds the form filled in with it and confirms it with a reason."""
    gw.add_user("sam", Role.SENIOR)
    gw.add_user("sue", Role.SENIOR)
    waiting = gw.decide_in_background("t-echo", {"score": 0.5, "vip": True}, wait=30)
    sam = new_page()
    login(sam, gw.url, "sam")
    _open_only_item(sam, gw.url)
    sam.fill("[data-testid=out-score]", "0.95")
    sam.fill("[data-testid=override-reason]", "income verified by phone")
    sam.click("[data-testid=override]")
    expect(sam.locator(".flash.ok")).to_contain_text("1 of 2 people agree on override")
    assert not waiting.done()

    sue = new_page()
    login(sue, gw.url, "sue")
    _open_only_item(sue, gw.url)
    expect(sue.locator("[data-testid=reviews]")).to_contain_text("override by sam")
    expect(sue.locator("[data-testid=proposed-output]")).to_contain_text("score = 0.95")
    expect(sue.locator("[data-testid=approvals]")).to_contain_text(
        "1 of 2 agree on override (score = 0.95)"
    )
    expect(sue.locator("[data-testid=out-score]")).to_have_value("0.95")
    sue.fill("[data-testid=override-reason]", "payslips match")
    sue.click("[data-testid=override]")
    answered = waiting.result(timeout=10)
    assert answered.status is Status.OVERRIDDEN
    assert answered.final_output == {"score": 0.95}
    assert [r.reviewer for r in answered.reviews] == ["sam", "sue"]
