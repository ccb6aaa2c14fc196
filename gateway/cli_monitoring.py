"""``hitl-gateway models clear KEY --reason ...``: clear a model version's escalation.

Monitoring escalates a model version on its own when a policy threshold's evidence is met
(`gateway.modelrisk.early_warning`); only a person clears it, with a justification, recorded as a
``model.cleared`` audit event. On the data directory's store (opened directly, recorded as
``cli:<os user>``), or through a running gateway's AdminService with ``--target`` and an admin
key (recorded as that key), like ``switch``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from gateway.cli_target import admin_target, target_options
from gateway.config import Settings
from gateway.errors import GatewayError, InvalidInput, StoreUnavailable
from gateway.modelrisk.record import ModelKey
from gateway.telemetry.tracing import command_span


def _parse_key(text: str) -> ModelKey:
    """``backend/name@version``; raises `InvalidInput` naming ``model``."""
    backend, slash, rest = text.partition("/")
    name, at, version = rest.rpartition("@")
    if not (slash and at and backend and name and version):
        raise InvalidInput("model", f"expected backend/name@version, not {text!r}")
    return ModelKey(backend, name, version)


async def _on_store(settings: Settings, key: ModelKey, actor: str, reason: str) -> str:
    from gateway.modelrisk.escalations import Escalations
    from gateway.store import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store_url)
    await store.start()
    try:
        with command_span("models clear"):
            record = await Escalations(store).clear(key, actor=actor, reason=reason)
        return str(record.key)
    finally:
        await store.stop()


def _through_gateway(args: argparse.Namespace, key: ModelKey, reason: str) -> str:
    from opentelemetry import propagate

    from gateway._pb.hitl.admin.v1 import admin_pb2 as pb
    from gateway._pb.hitl.admin.v1 import admin_pb2_grpc

    channel, token = admin_target(args)
    with channel, command_span("models clear"):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        auth = (("authorization", f"Bearer {token}"),) if token else ()
        request = pb.ModelClearEscalationRequest(
            key=pb.ModelKey(backend=key.backend, name=key.name, version=key.version),
            reason=reason,
        )
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        stub.ClearModelEscalation(request, metadata=(*auth, *carrier.items()))
    return str(key)


def _command(
    args: argparse.Namespace,
    settings: Callable[[argparse.Namespace], Settings],
    actor: Callable[[], str],
) -> int:
    import grpc

    try:
        key = _parse_key(args.model)
        reason = (args.reason or "").strip()
        if not reason:
            raise InvalidInput("reason", "required: say why the escalation may be cleared")
        if args.target:
            done = _through_gateway(args, key, reason)
        else:
            done = asyncio.run(_on_store(settings(args), key, actor(), reason))
    except InvalidInput as exc:
        flag = {"reason": "--reason", "model": "KEY"}.get(exc.field, exc.field)
        print(f"error: {flag}: {exc.message.removeprefix(f'{exc.field}: ')}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except GatewayError as exc:  # not escalated, not in the inventory
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(f"cleared the escalation of {done}", file=sys.stderr)
    return 0


def add_models_clear_parser(
    sub: Any,
    common: Callable[[argparse.ArgumentParser], None],
    settings: Callable[[argparse.Namespace], Settings],
    actor: Callable[[], str],
) -> None:
    """Add ``models clear`` to the top-level subparsers ``sub``: to the ``models`` command when
    the inventory's commands made it already (registered before this), else to a new one."""
    parser = sub.choices.get("models")
    if parser is None:
        parser = sub.add_parser("models", help="the model inventory and its monitoring")
        parser.add_subparsers(dest="models_command", required=True)
    [models] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    add_clear_parser(models, common, settings, actor)


def add_clear_parser(
    models: Any,
    common: Callable[[argparse.ArgumentParser], None],
    settings: Callable[[argparse.Namespace], Settings],
    actor: Callable[[], str],
) -> None:
    """Add ``clear`` to the ``models`` command's subparsers."""
    p = models.add_parser(
        "clear", help="clear a model version's escalation by monitoring (audited)"
    )
    common(p)
    p.add_argument("model", metavar="KEY", help="the model version: backend/name@version")
    p.add_argument("--reason", required=True, help="why it may decide automatically again")
    target_options(p)
    p.set_defaults(func=lambda args: _command(args, settings, actor))
