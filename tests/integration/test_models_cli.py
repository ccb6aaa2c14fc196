"""`hitl-gateway models …` against a running gateway on either store: on its data directory,
or --target through AdminService."""

from __future__ import annotations

import asyncio
import getpass

import orjson

from gateway.app import Gateway
from gateway.config import Settings
from gateway.core.auth import new_key
from gateway.modelrisk.record import ModelKey, ModelStatus
from gateway.testing import create_api_key
from gateway.types import Role
from tests.integration.oip_app import policies_dir, settings
from tests.integration.serverproc import cli
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "policies_dir", "settings"]

MODEL = "echo/echo@2"
KEY = ModelKey("echo", "echo", "2")


def _local(settings: Settings) -> tuple[str, ...]:
    where = ("--data-dir", str(settings.data_dir), "--policies", str(settings.policies))
    return (*where, "--store", settings.store) if settings.store else where


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = await asyncio.to_thread(cli, *args, env=env)
    return done.returncode, done.stdout, done.stderr


async def test_the_lifecycle_on_the_data_directory_is_audited_and_verifies(
    gateway: Gateway, settings: Settings
) -> None:
    """register, validate, approve (the owner refused, any case), suspend, resume and retire on
    the store as cli:<os user>; list/show/history print it; `audit query` finds each event and
    `audit verify` passes."""
    here = _local(settings)
    steps: list[tuple[str, ...]] = [
        ("register", MODEL, "--owner", "Olga", "--intended-use", "demo", "--max-tier", "high"),
        ("validate", MODEL, "--validator", "vic", "--expires", "2099-01-01"),
        ("approve", MODEL, "--approver", "ann"),
        ("suspend", MODEL),
        ("resume", MODEL, "--approver", "ann"),
        ("retire", MODEL),
    ]
    for i, step in enumerate(steps):
        if step[0] == "approve":
            rc, _, err = await _run(
                "models", "approve", MODEL, "--approver", " olga ", *here, "--justification", "mine"
            )
            assert rc == 1 and "owns" in err, err
        rc, out, err = await _run("models", *step, "--justification", f"step {i}", *here)
        assert rc == 0, err
    rc, out, err = await _run("models", "list", "--format", "jsonl", *here)
    assert rc == 0, err
    listed = {r["model"]: r for r in map(orjson.loads, out.splitlines())}
    assert listed[MODEL]["status"] == "retired" and listed[MODEL]["owner"] == "Olga"
    rc, out, err = await _run("models", "show", MODEL, *here)
    assert rc == 0 and "retired" in out, err
    rc, out, err = await _run("models", "history", MODEL, "--format", "jsonl", *here)
    assert rc == 0, err
    history = [orjson.loads(line) for line in out.splitlines()]
    types = ["registered", "validated", "approved", "suspended", "resumed", "retired"]
    assert [h["type"] for h in history] == [f"model.{t}" for t in types]
    assert {h["actor"] for h in history} == {f"cli:{getpass.getuser()}"}
    assert [h["payload"]["justification"] for h in history] == [f"step {i}" for i in range(6)]

    rc, out, err = await _run(
        "audit", "query", "--type", "model.approved", "--format", "jsonl", *here
    )
    assert rc == 0, err
    assert len(out.splitlines()) == 1 and MODEL in out
    rc, _, err = await _run("audit", "verify", *here)
    assert rc == 0, err
    assert (await gateway.audit.verify()).result.ok
    stored = await gateway.store.get_model(KEY)
    assert stored is not None and stored.status is ModelStatus.RETIRED


async def test_a_wrong_move_or_a_missing_field_names_the_problem(
    gateway: Gateway, settings: Settings
) -> None:
    """approve before validation is refused naming the statuses (exit 1); an unknown tier, a
    malformed model or an expiry in the past names the flag (exit 2); nothing is recorded."""
    here = _local(settings)
    rc, _, err = await _run(
        "models",
        "register",
        MODEL,
        "--owner",
        "o",
        "--intended-use",
        "u",
        "--max-tier",
        "extreme",
        *here,
    )
    assert rc == 2 and err.startswith("error: --max-tier:"), err
    rc, _, err = await _run("models", "show", "echo-no-version", *here)
    assert rc == 2 and err.startswith("error: MODEL:"), err
    rc, _, err = await _run(
        "models",
        "register",
        MODEL,
        "--owner",
        "o",
        "--intended-use",
        "u",
        "--max-tier",
        "high",
        *here,
    )
    assert rc == 0, err
    rc, _, err = await _run(
        "models", "approve", MODEL, "--approver", "ann", "--justification", "j", *here
    )
    assert rc == 1 and "is registered" in err and "validated" in err, err
    rc, _, err = await _run(
        "models",
        "validate",
        MODEL,
        "--validator",
        "vic",
        "--expires",
        "2001-01-01",
        "--justification",
        "j",
        *here,
    )
    assert rc == 2 and err.startswith("error: --expires:"), err
    events = [e.type for e in await gateway.store.audit_events() if e.type.startswith("model.")]
    registered = [e for e in events if e == "model.registered"]
    assert events == registered  # the built-in models' and ours, nothing else


async def test_target_needs_an_admin_key_and_is_audited_as_that_key(
    gateway: Gateway, settings: Settings
) -> None:
    """--target registers and moves through AdminService as app:<key id>; without a key it is
    exit 2 naming --key, with a non-admin key PERMISSION_DENIED, and nothing changes."""
    target = ("--target", f"127.0.0.1:{gateway.grpc_port}")
    register = (
        "models",
        "register",
        MODEL,
        "--owner",
        "olga",
        "--intended-use",
        "demo",
        "--max-tier",
        "limited",
        *target,
    )
    rc, _, err = await _run(*register, env={"HITL_ADMIN_KEY": ""})
    assert rc == 2 and err.startswith("error: --key:"), err
    rc, _, err = await _run(*register, "--key", await create_api_key(gateway))
    assert rc == 1 and "PERMISSION_DENIED" in err, err
    assert await gateway.store.get_model(KEY) is None

    token, record = new_key((), role="admin")
    await gateway.store.add_api_key(record)
    rc, out, err = await _run(*register, "--key", token)
    assert rc == 0, err
    rc, _, err = await _run(
        "models",
        "validate",
        MODEL,
        "--validator",
        "vic",
        "--expires",
        "2099-01-01",
        "--justification",
        "MV-7",
        *target,
        env={"HITL_ADMIN_KEY": token},
    )
    assert rc == 0, err
    rc, _, err = await _run(
        "models",
        "approve",
        MODEL,
        "--approver",
        "OLGA",
        "--justification",
        "j",
        *target,
        "--key",
        token,
    )
    assert rc == 1 and "PERMISSION_DENIED" in err and "owns" in err, err
    rc, out, err = await _run("models", "list", "--format", "jsonl", *target, "--key", token)
    assert rc == 0, err
    listed = {r["model"]: r for r in map(orjson.loads, out.splitlines())}
    assert listed[MODEL]["status"] == "validated" and listed[MODEL]["validator"] == "vic"
    rc, out, err = await _run("models", "history", MODEL, *target, "--key", token)
    assert rc == 0, err
    assert [line.split()[3] for line in out.splitlines()[1:]] == [
        "model.registered",
        "model.validated",
    ]
    events = await gateway.store.model_events(KEY)
    assert {e.actor for e in events} == {f"app:{record.key_id}"}


async def test_users_add_creates_a_model_risk_account(gateway: Gateway, settings: Settings) -> None:
    """`users add --role model-risk` creates the account on either store (the role is allowed
    by the accounts table), with no review groups."""
    done = await asyncio.to_thread(
        cli,
        "users",
        "add",
        "mara",
        "--role",
        "model-risk",
        *_local(settings),
        stdin="correct horse battery\n",
    )
    assert done.returncode == 0, done.stderr
    account = await gateway.store.get_account("mara")
    assert account is not None and account.role is Role.MODEL_RISK and account.groups == ()
