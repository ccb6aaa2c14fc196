"""Account changes made with `hitl-gateway users …` (a separate process on the running gateway's
data directory) reach a reviewer's open browser session on its very next request."""

from __future__ import annotations

import asyncio
import getpass
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess

import asyncpg
import pytest
from playwright.sync_api import Page, expect

from gateway.config import Settings
from gateway.keys import generate_secrets
from gateway.types import Role, Status
from tests.browser.conftest import login
from tests.browser.gatewaythread import ADMIN_PASSWORD, PASSWORD, GatewayThread
from tests.integration.serverproc import cli
from tests.pgserver import server_dsn, with_search_path

PageFactory = Callable[[], Page]


def _sql(dsn: str, statement: str) -> None:
    # Off the main thread: sync Playwright keeps an event loop running on it.
    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result(30)


@pytest.fixture(params=["sqlite", "postgres"])
def any_gw(
    request: pytest.FixtureRequest, tmp_path: Path, policies_dir: Path
) -> Iterator[GatewayThread]:
    """The browser tests' gateway on its data directory's SQLite file, or on a fresh schema of a
    real PostgreSQL server."""
    if request.param == "sqlite":
        yield request.getfixturevalue("gw")
        return
    server, schema = server_dsn(), f"t_{uuid.uuid4().hex[:16]}"
    _sql(server, f"CREATE SCHEMA {schema}")
    keys = generate_secrets()
    settings = Settings(
        grpc_port=0,
        http_port=0,
        data_dir=tmp_path / "var",
        policies=policies_dir,
        log_level="warning",
        shutdown_grace=1.0,
        admin_password=ADMIN_PASSWORD,
        store=with_search_path(server, schema),
        # A PostgreSQL store takes its keys from the settings, as every replica shares them.
        data_key=keys["data_key"],
        audit_signing_key=keys["audit_signing_key"],
        session_key=keys["session_key"],
    )
    thread = GatewayThread(settings)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()
        _sql(server, f"DROP SCHEMA {schema} CASCADE")


def _users(gw: GatewayThread, *args: str) -> CompletedProcess[str]:
    where: tuple[str, ...] = ("--data-dir", str(gw.settings.data_dir))
    where += ("--policies", str(gw.settings.policies))
    if gw.settings.store:
        where += ("--store", gw.settings.store)
    r = cli("users", *args, *where)
    assert r.returncode == 0, r.stderr
    return r


def _try_login(page: Page, base: str, name: str) -> None:
    page.goto(f"{base}/ui/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_disabling_a_reviewer_ends_their_session_and_frees_their_item_at_once(
    any_gw: GatewayThread, new_page: PageFactory
) -> None:
    """After `users disable`, the reviewer's next click is refused, another reviewer takes the
    item at once, sign-in is refused until `users enable`, and the trail names the OS user."""
    gw = any_gw
    gw.add_user("tom", Role.REVIEWER)
    gw.add_user("ann", Role.REVIEWER)
    held = gw.decide("t-echo", {"score": 0.5})
    item = f"{gw.url}/ui/items/{held.id}"
    tom, ann = new_page(), new_page()
    login(tom, gw.url, "tom")
    tom.goto(item)
    expect(tom.locator("[data-testid=claim]")).to_contain_text("Claimed by you")
    login(ann, gw.url, "ann")
    ann.goto(item)
    expect(ann.locator("[data-testid=claim]")).to_contain_text("Being reviewed by tom")

    done = _users(gw, "disable", "tom")
    assert "1 UI session(s) ended, 1 review lease(s) released" in done.stderr

    tom.click("[data-testid=approve]")  # the page he already has open
    expect(tom.locator("body")).to_contain_text("Sign in first.")
    tom.goto(f"{gw.url}/ui/")
    expect(tom).to_have_url(re.compile(r"/ui/login$"))
    ann.reload()
    expect(ann.locator("[data-testid=claim]")).to_contain_text("Claimed by you")
    ann.click("[data-testid=approve]")
    expect(ann.locator(".flash.ok")).to_contain_text("APPROVED")
    decided = gw.call(gw.gateway.store.get_decision(held.id))
    assert decided is not None and decided.status is Status.APPROVED
    assert [r.reviewer for r in decided.reviews] == ["ann"]

    _try_login(tom, gw.url, "tom")
    expect(tom.locator(".flash.error")).to_contain_text("wrong name or password")
    _users(gw, "enable", "tom")
    login(tom, gw.url, "tom")

    events = gw.call(gw.gateway.store.audit_events())
    toggles = {"account.disabled", "account.enabled"}
    changes = [(e.type, e.actor) for e in events if e.type in toggles]
    assert changes == [
        ("account.disabled", f"cli:{getpass.getuser()}"),
        ("account.enabled", f"cli:{getpass.getuser()}"),
    ]


def test_new_groups_and_role_apply_to_an_open_session_on_its_next_request(
    gw: GatewayThread, new_page: PageFactory
) -> None:
    """`users set-groups` opens an item to a signed-in reviewer, and `users set-role auditor`
    takes deciding away, each on the next click without signing in again."""
    gw.add_user("tom", Role.REVIEWER, ("retail",))
    held = gw.decide("t-echo", {"score": 0.5})  # held for the group reviewers
    item = f"{gw.url}/ui/items/{held.id}"
    tom = new_page()
    login(tom, gw.url, "tom")
    assert (resp := tom.goto(item)) is not None and resp.status == 403

    _users(gw, "set-groups", "tom", "--group", "reviewers")
    tom.goto(item)
    expect(tom.locator("[data-testid=claim]")).to_contain_text("Claimed by you")

    _users(gw, "set-role", "tom", "--role", "auditor")
    tom.click("[data-testid=approve]")
    expect(tom.locator(".flash.error")).to_contain_text("may read but not decide")
    expect(tom.locator("[data-testid=claim]")).to_contain_text("Read only: your role (auditor)")
    decided = gw.call(gw.gateway.store.get_decision(held.id))
    assert decided is not None and decided.status is Status.PENDING_REVIEW
