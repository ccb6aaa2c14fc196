"""A verdict given in a real browser reaches the application as one signed webhook."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from gateway.config import Settings
from gateway.types import Role
from tests.browser.conftest import login
from tests.browser.gatewaythread import ADMIN_PASSWORD, GatewayThread
from tests.integration.webhook_receiver import (
    SECRET,
    SECRET_ENV,
    WebhookReceiver,
    write_hook_policy,
)

PageFactory = Callable[[], Page]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture
def hooked(
    tmp_path: Path,
    policies_dir: Path,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[GatewayThread]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    write_hook_policy(policies_dir, receiver.url)
    settings = Settings(
        grpc_port=0,
        http_port=0,
        data_dir=tmp_path / "var",
        policies=policies_dir,
        log_level="warning",
        shutdown_grace=1.0,
        admin_password=ADMIN_PASSWORD,
        outbox_interval=0.1,
    )
    thread = GatewayThread(settings)
    thread.start()
    yield thread
    thread.stop()


def test_approval_in_the_browser_posts_one_signed_decision_final(
    hooked: GatewayThread, receiver: WebhookReceiver, new_page: PageFactory
) -> None:
    """Approve clicked in the UI: the application's endpoint gets one decision.final, signed
    (checked by the standardwebhooks verifier), with the decision as GetDecision returns it."""
    hooked.add_user("rita", Role.REVIEWER)
    held = hooked.decide("t-hook", {"score": 0.5, "customer": {"name": "Ana"}})
    page = new_page()
    login(page, hooked.url, "rita")
    page.goto(f"{hooked.url}/ui/items/{held.id}")
    expect(page.locator("[data-testid=claim]")).to_contain_text("Claimed by you")
    page.click("[data-testid=approve]")
    expect(page.locator(".flash.ok")).to_contain_text("APPROVED")

    (delivery,) = receiver.wait_for(1)
    assert delivery.id == f"msg_{held.id}_final"
    assert delivery.payload["type"] == "decision.final"
    data = delivery.payload["data"]
    assert (data["id"], data["application"], data["status"]) == (held.id, "t-hook", "APPROVED")
    assert data["reviews"][0]["reviewer"] == "rita"
    assert data["input"]["customer"]["name"] == "Ana"  # the application's own view, unmasked
    page.wait_for_timeout(500)  # more delivery runs: still one
    assert len(receiver.received()) == 1
    assert receiver.rejected == []
