"""The model page's monitoring charts in real Chromium: rates with their thresholds and the
output histogram against its reference, drawn by the server with no request leaving it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, expect

from gateway.core.reviews import Reviewer
from gateway.modelrisk.record import ModelKey
from gateway.types import Verdict
from tests.browser.conftest import login
from tests.browser.gatewaythread import ADMIN_PASSWORD, GatewayThread

PageFactory = Callable[[], Page]
KEY = ModelKey("watched", "echo", "1")
MONITORED = """
backends:
  - name: watched
    kind: builtin
    model: echo
    version: "1"
    monitor:
      psi: {above: 0.25, min_reviews: 10, window: 1d, action: alert}
applications:
  - id: t-watched
    tier: limited
    backend: watched
    route:
      - {when: "output.score >= 0.8", action: approve}
    monitor:
      override_rate: {above: 0.15, min_reviews: 5, window: 7d, action: escalate}
"""


@pytest.fixture
def policies_dir(policies_dir: Path) -> Path:
    """The browser tests' policies plus one monitored model version."""
    (policies_dir / "t-monitored.yaml").write_text(MONITORED)
    return policies_dir


def test_the_model_page_draws_its_monitoring_without_external_requests(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """Held outputs half overridden and a shifted score: the page shows the override rate with
    its dashed threshold and a breach, and the score histogram beside its reference; every
    request the browser made went to the gateway itself."""
    start = datetime.now(UTC) - timedelta(hours=1)
    for score in (0.9, 0.85, 0.95, 0.9):  # the reference: high scores, approved
        gw.decide("t-watched", {"score": score})
    gw.call(gw.gateway.store.set_model_reference(KEY, start, datetime.now(UTC), "user:ada"))
    held = [gw.decide("t-watched", {"score": 0.3 + i / 100}) for i in range(10)]
    for i, d in enumerate(held):
        verdict = Verdict.OVERRIDE if i % 2 else Verdict.APPROVE
        output = {"score": 0.1} if verdict is Verdict.OVERRIDE else None
        who = Reviewer(f"r{i}", "reviewer")
        gw.call(gw.gateway.reviews.submit(d.id, who, verdict, "checked", output))

    page = new_page()
    requests: list[Request] = []
    page.on("request", lambda r: requests.append(r))
    login(page, gw.url, "admin", ADMIN_PASSWORD)
    page.goto(f"{gw.url}/ui/models/watched/echo/1")
    panel = page.locator("[data-testid=model-monitoring]")
    expect(panel).to_be_visible()
    override = panel.locator("[data-testid=rate-override_rate]")
    expect(override).to_contain_text("5 of 10")
    expect(override.locator("svg polyline")).to_have_count(1)
    expect(override.locator("svg circle")).to_have_count(1)  # one day with reviews
    expect(override.locator("[data-testid=threshold-override_rate]")).to_have_count(1)
    expect(panel.locator("[data-testid=breach-override_rate]")).to_contain_text("escalate")
    expect(panel.locator("[data-testid=rate-held_rate]")).to_contain_text("no threshold")
    histogram = panel.locator("[data-testid=histogram-score]")
    expect(histogram).to_contain_text("14 outputs")
    expect(histogram).to_contain_text("threshold 0.25")
    expect(histogram.locator("rect.reference")).not_to_have_count(0)
    expect(histogram.locator("rect.current")).not_to_have_count(0)
    psi = float(histogram.inner_text().split("PSI ", 1)[1].split()[0])
    assert psi > 0.25  # the held scores moved the window far from the reference
    box = override.locator("svg").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 50  # really drawn
    assert requests, "no requests recorded"
    outside = [r.url for r in requests if not r.url.startswith(gw.url)]
    assert outside == []
