"""Fixtures: one Chromium for all browser tests, a fresh real gateway and browser context per test.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it). When it is missing the
tests fail rather than skip: a browser test that silently does not run proves nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from gateway.config import Settings
from tests.browser.gatewaythread import ADMIN_PASSWORD, PASSWORD, GatewayThread

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
QUICK_TIER = """
  - name: quick
    review: {approvals: 1, groups: [reviewers], sla: 1s, on_timeout: reject}
"""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Package scope, not session: sync Playwright keeps an event loop running on the main thread
# while it is open, which would break the asyncio tests that run after this package.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (see .ci/run)")
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def policies_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", target, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(ROOT / "tests" / "integration" / "policies" / "test-apps.yaml", target)
    shutil.copy(Path(__file__).parent / "policies" / "browser-apps.yaml", target)
    with (target / "tiers.yaml").open("a") as f:
        f.write(QUICK_TIER)
    return target


@pytest.fixture
def gw(tmp_path: Path, policies_dir: Path) -> Iterator[GatewayThread]:
    settings = Settings(
        grpc_port=0,
        http_port=0,
        data_dir=tmp_path / "var",
        policies=policies_dir,
        log_level="warning",
        shutdown_grace=1.0,
        sla_sweep_interval=0.2,
        admin_password=ADMIN_PASSWORD,
    )
    thread = GatewayThread(settings)
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """A factory of pages, each in its own context (its own cookies): one per person."""
    contexts = []

    def make() -> Page:
        ctx = browser.new_context()
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def login(page: Page, base: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/ui/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=whoami]")
