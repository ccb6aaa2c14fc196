"""`hitl-gateway users list | disable | enable | set-role | set-groups` as a separate process, on a
data directory (SQLite) and on PostgreSQL (``HITL_STORE``): output, exit codes and the trail."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from gateway.store import open_store
from gateway.types import AuditEvent
from tests.integration.serverproc import cli
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server"]

PASSWORD = "correct horse battery\n"
ACTOR = f"cli:{getpass.getuser()}"

Users = Callable[..., CompletedProcess[str]]


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the commands keep their data: the data directory's SQLite file or a PostgreSQL DSN."""
    if request.param == "sqlite":
        return str(tmp_path / "var" / "gateway.db")
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


@pytest.fixture
def users(location: str, tmp_path: Path) -> Users:
    """Runs ``hitl-gateway users …`` against ``location`` (PostgreSQL through HITL_STORE)."""
    env = {} if location.endswith(".db") else {"HITL_STORE": location}

    def run(*args: str, stdin: str | None = None) -> CompletedProcess[str]:
        where = ("--data-dir", str(tmp_path / "var"))
        return cli("users", *args, *where, stdin=stdin, env=env)

    return run


async def _trail(location: str) -> list[AuditEvent]:
    store = open_store(location)
    await store.start()
    try:
        return await store.audit_events()
    finally:
        await store.stop()


def _ok(r: CompletedProcess[str]) -> str:
    assert r.returncode == 0, r.stderr
    return r.stderr


async def test_each_change_is_listed_and_audited_with_the_os_user(
    users: Users, location: str
) -> None:
    """list shows name, role, groups, state and creation; each change is one event by cli:<user>."""
    _ok(await asyncio.to_thread(users, "add", "boss", "--role", "admin", stdin=PASSWORD))
    _ok(
        await asyncio.to_thread(
            users, "add", "tom", "--role", "reviewer", "--group", "retail", stdin=PASSWORD
        )
    )
    said = [
        _ok(await asyncio.to_thread(users, "disable", "tom")),
        _ok(await asyncio.to_thread(users, "enable", "tom")),
        _ok(await asyncio.to_thread(users, "set-role", "tom", "--role", "senior")),
        _ok(await asyncio.to_thread(users, "set-groups", "tom", "--group", "a", "--group", "b")),
        _ok(await asyncio.to_thread(users, "disable", "tom")),
    ]
    assert "tom disabled: 0 UI session(s) ended, 0 review lease(s) released" in said[0]
    assert "role reviewer -> senior" in said[2] and "groups retail -> a,b" in said[3]

    listed = await asyncio.to_thread(users, "list")
    assert listed.returncode == 0, listed.stderr
    lines = [line.split() for line in listed.stdout.splitlines()]
    assert [line[:4] for line in lines] == [
        ["boss", "admin", "-", "enabled"],
        ["tom", "senior", "a,b", "disabled"],
    ]
    assert all(line[4].endswith("Z") for line in lines)

    events = [e for e in await _trail(location) if e.type.startswith("account.")]
    assert [(e.type, e.actor) for e in events] == [
        ("account.created", ACTOR),
        ("account.created", ACTOR),
        ("account.disabled", ACTOR),
        ("account.enabled", ACTOR),
        ("account.role_changed", ACTOR),
        ("account.groups_changed", ACTOR),
        ("account.disabled", ACTOR),
    ]
    assert events[4].payload == {"name": "tom", "old_role": "reviewer", "new_role": "senior"}
    assert events[5].payload == {"name": "tom", "old_groups": ["retail"], "new_groups": ["a", "b"]}
    assert all(e.trace_id for e in events[2:])  # each command runs in a span of its own


async def test_refusals_exit_2_with_the_reason_and_write_nothing(
    users: Users, location: str
) -> None:
    """Unknown name, last admin and bad group exit 2 saying why; a repeated disable is a no-op."""
    _ok(await asyncio.to_thread(users, "add", "boss", "--role", "admin", stdin=PASSWORD))
    _ok(await asyncio.to_thread(users, "add", "tom", "--role", "reviewer", stdin=PASSWORD))
    _ok(await asyncio.to_thread(users, "disable", "tom"))
    before = len(await _trail(location))

    again = await asyncio.to_thread(users, "disable", "tom")
    assert again.returncode == 0 and "tom is already disabled; nothing changed" in again.stderr
    for args, reason in [
        (("disable", "ghost"), "account 'ghost' not found"),
        (("set-role", "ghost", "--role", "senior"), "account 'ghost' not found"),
        (("disable", "boss"), "boss is the last enabled admin"),
        (("set-role", "boss", "--role", "auditor"), "boss is the last enabled admin"),
        (("set-groups", "tom", "--group", "no spaces"), "invalid group name 'no spaces'"),
    ]:
        r = await asyncio.to_thread(users, *args)
        assert (r.returncode, r.stdout) == (2, ""), r.stderr
        assert r.stderr.startswith("error: ") and reason in r.stderr
    assert len(await _trail(location)) == before
