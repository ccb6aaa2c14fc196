"""The model inventory pages, driven through real Chromium: a model-risk account moves a model
version through its lifecycle; auditors and admins read; other roles are refused."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from gateway.modelrisk.record import ModelKey, ModelStatus
from gateway.types import Role, Status
from tests.browser.conftest import login
from tests.browser.gatewaythread import GatewayThread

PageFactory = Callable[[], Page]
KEY = ModelKey("echo", "echo", "5")


def _register(page: Page, owner: str) -> None:
    form = page.locator("[data-testid=register-model]")
    for field, value in (
        ("backend", KEY.backend),
        ("name", KEY.name),
        ("version", KEY.version),
        ("owner", owner),
        ("documentation_url", "https://wiki.example/echo"),
    ):
        form.locator(f"input[name={field}]").fill(value)
    form.locator("textarea[name=intended_use]").fill("demo <b>echo</b>")
    form.locator("select[name=max_tier]").select_option("limited")
    form.locator("button[type=submit]").click()


def _move(page: Page, verb: str, why: str, **fields: str) -> None:
    form = page.locator(f"[data-testid=move-{verb}]")
    for name, value in fields.items():
        form.locator(f"input[name={name}]").fill(value)
    form.locator("input[name=justification]").fill(why)
    form.locator("button[type=submit]").click()


def test_model_risk_moves_a_model_through_its_lifecycle(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """Registered, validated and approved through the forms; the list and the page show the
    record and every step in the history, each recorded as user:<name>."""
    gw.add_user("mara", Role.MODEL_RISK)
    page = new_page()
    login(page, gw.url, "mara")
    page.click("nav >> text=Models")
    expect(page.locator("tr[data-model='echo/echo@1']")).to_have_count(1)  # built-in
    _register(page, owner="olga")
    expect(page.locator(".flash.ok")).to_contain_text("echo/echo@5 registered")
    expect(page.locator("[data-testid=model-status]")).to_have_text("registered")
    expect(page.locator("[data-testid=model-record]")).to_contain_text("demo <b>echo</b>")
    _move(page, "validate", "report MV-9", validator="vic", validation_expires_at="2099-12-31")
    expect(page.locator("[data-testid=model-status]")).to_have_text("validated")
    _move(page, "approve", "model risk committee 12")
    expect(page.locator("[data-testid=model-status]")).to_have_text("approved")
    _move(page, "suspend", "drift")
    expect(page.locator("[data-testid=model-status]")).to_have_text("suspended")
    history = page.locator("[data-testid=model-history] li")
    expect(history).to_have_count(4)
    expect(history.nth(2)).to_contain_text("model risk committee 12")
    expect(history.nth(2)).to_contain_text("mara")
    page.click("text=← Model inventory")
    row = page.locator("tr[data-model='echo/echo@5']")
    expect(row).to_contain_text("suspended")
    expect(row).to_contain_text("olga")
    expect(row).to_contain_text("vic")
    expect(row).to_contain_text("2099-12-31")
    stored = gw.call(gw.gateway.store.get_model(KEY))
    assert stored is not None and stored.status is ModelStatus.SUSPENDED
    events = gw.call(gw.gateway.store.model_events(KEY))
    assert [e.actor for e in events] == ["user:mara"] * 4
    assert gw.call(gw.gateway.audit.verify()).result.ok


def test_the_owner_may_not_approve_their_own_model_in_the_ui(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """A model-risk account that owns the model (names compared case-insensitively) is refused
    the approval with 403 naming the rule; the model stays validated."""
    gw.add_user("mara", Role.MODEL_RISK)
    page = new_page()
    login(page, gw.url, "mara")
    page.goto(f"{gw.url}/ui/models")
    _register(page, owner=" MARA ")
    _move(page, "validate", "report", validator="vic", validation_expires_at="2099-12-31")
    _move(page, "approve", "mine")
    expect(page.locator("[data-testid=error]")).to_contain_text("owns")
    stored = gw.call(gw.gateway.store.get_model(KEY))
    assert stored is not None and stored.status is ModelStatus.VALIDATED


def test_auditors_read_while_other_roles_are_refused(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """An auditor sees the list and the page but no forms, and a posted transition is 403; a
    reviewer gets no link and 403; a model-risk account sees no review queue item."""
    for name, role in (("ida", Role.AUDITOR), ("rita", Role.REVIEWER), ("mara", Role.MODEL_RISK)):
        gw.add_user(name, role, ("reviewers",) if role is Role.MODEL_RISK else None)
    held = gw.decide("t-echo", {"score": 0.5})
    assert held.status is Status.PENDING_REVIEW

    page = new_page()
    login(page, gw.url, "ida")
    page.click("nav >> text=Models")
    page.locator("tr[data-model='echo/echo@1'] a").click()
    expect(page.locator("[data-testid=model-status]")).to_have_text("approved")
    expect(page.locator("[data-testid=model-history] li")).to_have_count(1)
    expect(page.locator("form[data-testid^=move-]")).to_have_count(0)
    token = page.locator("input[name=csrf]").first.input_value()
    resp = page.request.post(
        f"{gw.url}/ui/models/echo/echo/1/transition",
        form={"csrf": token, "action": "suspend", "justification": "not mine to do"},
    )
    assert resp.status == 403
    stored = gw.call(gw.gateway.store.get_model(ModelKey("echo", "echo", "1")))
    assert stored is not None and stored.status is ModelStatus.APPROVED

    page = new_page()
    login(page, gw.url, "rita")
    expect(page.locator("nav >> text=Models")).to_have_count(0)
    resp = page.request.get(f"{gw.url}/ui/models")
    assert resp.status == 403

    page = new_page()
    login(page, gw.url, "mara")  # in group reviewers, yet sees no queue
    page.goto(f"{gw.url}/ui/")
    expect(page.locator("table.queue tr[data-decision]")).to_have_count(0)
    resp = page.request.get(f"{gw.url}/ui/items/{held.id}")
    assert resp.status in (403, 404)
