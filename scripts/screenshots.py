"""Screenshots of the reviewer UI for the README (docs/queue.png, docs/item.png).

Starts a gateway on a temporary data directory with the shipped policies, sends a few
credit-limit and fraud-alert requests that are held for review, signs in as a senior reviewer
in Debian's Chromium and captures the queue and one item page.

    python scripts/screenshots.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

from gateway.app import Gateway
from gateway.config import Settings
from gateway.core.auth import Principal
from gateway.core.pipeline import DecideCommand
from gateway.types import Role

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "screenshot password"
REQUESTS = [
    (
        "credit-limit",
        {
            "income": 62000,
            "debt_ratio": 0.45,
            "past_delinquencies": 1,
            "amount": 18000,
            "customer": {"name": "Jane Roe", "national_id": "X123"},
        },
    ),
    (
        "credit-limit",
        {
            "income": 240000,
            "debt_ratio": 0.2,
            "past_delinquencies": 0,
            "amount": 150000,
            "customer": {"name": "Max Mustermann", "national_id": "Y987"},
        },
    ),
    (
        "credit-limit",
        {
            "income": 41000,
            "debt_ratio": 0.55,
            "past_delinquencies": 3,
            "amount": 9000,
            "customer": {"name": "Ana Silva", "national_id": "Z555"},
        },
    ),
    (
        "fraud-alert",
        {
            "amount": 1800,
            "merchant_risk": 0.6,
            "country_mismatch": True,
            "velocity_1h": 4,
            "customer": {"name": "Li Wei", "card_number": "4111"},
        },
    ),
]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            grpc_port=0,
            http_port=0,
            data_dir=Path(tmp),
            policies=ROOT / "policies",
            log_level="warning",
            admin_password="screenshot admin password",
        )
        async with Gateway(settings) as gw:
            await gw.accounts.create("maria", Role.SENIOR, PASSWORD)
            everyone = Principal("screens", frozenset(gw.policies.applications))
            held = []
            for app, data in REQUESTS:
                d = await gw.pipeline.decide(DecideCommand(app, data), everyone)
                held.append(d.id)
            base = f"http://127.0.0.1:{gw.http_port}/ui"
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
                )
                page = await browser.new_page(viewport={"width": 1200, "height": 700})
                await page.goto(f"{base}/login")
                await page.fill("input[name=name]", "maria")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_selector("table.queue")
                await page.screenshot(path=str(ROOT / "docs" / "queue.png"))
                await page.goto(f"{base}/items/{held[0]}")
                await page.wait_for_selector("svg.chart")
                await page.screenshot(path=str(ROOT / "docs" / "item.png"), full_page=True)
                await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
