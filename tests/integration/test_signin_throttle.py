"""Sign-in throttling against attempts sent at once, and its memory under huge submitted names.

Passwords checked are counted at argon2's `PasswordHasher.verify`, the library call every
check goes through, so the count does not depend on what our code logs or believes it did.
"""

from __future__ import annotations

import asyncio
import gc
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import argon2
import httpx
import pytest

from gateway.app import Gateway
from gateway.config import Settings
from gateway.core.accounts import AccountService
from gateway.errors import RateLimited, Unauthenticated
from gateway.types import Role

PASSWORD = "correct horse battery"
BURST = 300
LIMIT = 5
"""The gateway's default: failed sign-ins per name and per client in five minutes."""


class CountingHasher(argon2.PasswordHasher):
    """argon2's hasher, counting the passwords it checks (from any thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.checked = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.checked += 1
        return super().verify(hash, password)


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every password argon2 checks in this process, the gateway's included."""
    calls: list[int] = []
    verify = argon2.PasswordHasher.verify

    def counting(self: argon2.PasswordHasher, hash: Any, password: Any) -> bool:
        calls.append(1)  # list.append is atomic: checks run in worker threads
        return verify(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting)  # undone after the test
    return calls


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return match[1]


async def test_a_burst_against_one_name_checks_at_most_the_limit(gateway: Gateway) -> None:
    """300 simultaneous wrong passwords for one name from one client: at most 5 are checked."""
    await gateway.accounts.create("ann", Role.REVIEWER, PASSWORD)
    hasher = CountingHasher()
    accounts = AccountService(gateway.store, hasher=hasher)
    results = await asyncio.gather(
        *(accounts.authenticate("ann", f"guess {i:04d} wrong", "10.0.0.9") for i in range(BURST)),
        return_exceptions=True,
    )
    assert hasher.checked <= LIMIT
    assert sum(isinstance(r, Unauthenticated) for r in results) == hasher.checked
    assert sum(isinstance(r, RateLimited) for r in results) == BURST - hasher.checked


async def test_a_burst_of_names_from_one_client_checks_at_most_the_limit(
    gateway: Gateway,
) -> None:
    """300 simultaneous attempts on 300 different names from one client: at most 5 are checked."""
    hasher = CountingHasher()
    accounts = AccountService(gateway.store, hasher=hasher)
    await asyncio.gather(
        *(accounts.authenticate(f"user{i}", "wrong password 1", "10.0.0.9") for i in range(BURST)),
        return_exceptions=True,
    )
    assert hasher.checked <= LIMIT


@pytest.fixture
async def roomy(settings: Settings) -> AsyncIterator[Gateway]:
    """A real gateway whose cap on connections per address lets a whole burst reach sign-in."""
    gateway = Gateway(replace(settings, http_max_connections_per_client=2 * BURST))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


async def test_a_burst_through_the_login_form_checks_at_most_the_limit(
    roomy: Gateway, checked: list[int]
) -> None:
    """300 simultaneous POSTs to /ui/login for one name: at most 5 passwords are checked."""
    gateway = roomy
    await gateway.accounts.create("ann", Role.REVIEWER, PASSWORD)
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    base = f"http://127.0.0.1:{gateway.http_port}"
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as web:
        csrf = _csrf(await web.get("/ui/login"))
        checked.clear()  # only the burst's checks count

        async def attempt(i: int) -> int:
            form = {"csrf": csrf, "name": "ann", "password": f"guess {i:04d} wrong"}
            return (await web.post("/ui/login", data=form)).status_code

        statuses = await asyncio.gather(*(attempt(i) for i in range(BURST)))
    assert len(checked) <= LIMIT
    assert statuses.count(401) == len(checked)
    assert statuses.count(429) == BURST - len(checked)


def _rss() -> int:
    """This process's resident memory in bytes (the gateway runs in it)."""
    text = Path("/proc/self/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB$", text, re.MULTILINE)
    assert match is not None
    return int(match[1]) * 1024


async def _huge_sign_in(port: int, source: str, cookie: str, body: list[bytes]) -> int:
    """One POST to /ui/login from ``source`` (a loopback address of its own); its status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        head = (
            f"POST /ui/login HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncookie: {cookie}\r\n"
            "content-type: application/x-www-form-urlencoded\r\n"
            f"content-length: {sum(map(len, body))}\r\nconnection: close\r\n\r\n"
        )
        writer.write(head.encode())
        writer.writelines(body)  # the huge part is one shared object, never copied here
        await writer.drain()
        status = await reader.readline()
        await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status.split()[1])


async def test_failed_sign_ins_with_huge_names_do_not_grow_memory(gateway: Gateway) -> None:
    """1,000 failed sign-ins with 1 MB names, 5 from each of 200 addresses, grow RSS < 5 MB."""
    port = gateway.http_port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as web:
        form = await web.get("/ui/login")
        cookie = "; ".join(f"{k}={v}" for k, v in web.cookies.items())
    tail = b"a" * ((1 << 20) - 11)  # "name" and a 7-digit serial: the largest field taken
    prefix = f"csrf={_csrf(form)}&password=wrong+password+1&name=".encode()

    async def fail(n: int, source: str) -> None:
        status = await _huge_sign_in(port, source, cookie, [prefix, b"%07d" % n, tail])
        assert status == 401  # refused as a wrong name, not merely throttled

    # A first round lets the allocator reach its working size for 1 MB requests.
    for n in range(50):
        await fail(n, f"127.0.2.{n // 5 + 1}")
    gc.collect()
    before = _rss()
    for n in range(1000):
        await fail(100 + n, f"127.0.1.{n // 5 + 1}")
        if n % 100 == 99:  # stop early on a leak rather than fill the machine's memory
            gc.collect()
            grown = _rss() - before
            assert grown < 5 * 2**20, f"RSS grew {grown / 2**20:.1f} MB after {n + 1} sign-ins"
