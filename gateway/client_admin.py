"""A running gateway's AdminService, called with an admin key (the CLI's ``--target`` side).

Blocking, like `gateway.client_audit`: a one-shot command makes one or two calls. Plaintext by
default (loopback, or a proxy that terminates TLS); with ``tls_ca`` the channel is TLS checked
against that CA, and with ``tls_cert``/``tls_key`` it presents a client certificate (mutual TLS).
The caller's trace context (`gateway.telemetry.tracing.command_span`) goes with each call, so
the gateway records the change under the trace of whoever asked for it.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
from opentelemetry import propagate

from gateway._pb.hitl.admin.v1 import admin_pb2 as pb
from gateway._pb.hitl.admin.v1 import admin_pb2_grpc
from gateway.api.admin_converters import SwitchRow, kind_to_pb, outbox_from_pb, switch_from_pb
from gateway.api.tls import read_pem
from gateway.store.outbox import OutboxMessage


def admin_channel(
    target: str,
    *,
    tls_ca: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> grpc.Channel:
    """A channel to ``target``: plaintext, or TLS when any TLS file is given.

    Raises:
        gateway.config.ConfigError: A file cannot be read or is not PEM, or only one of the
            client certificate and its key is given.
    """
    from gateway.config import ConfigError

    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together (a client certificate)")
    if tls_ca is None and tls_cert is None:
        return grpc.insecure_channel(target)
    creds = grpc.ssl_channel_credentials(
        root_certificates=None if tls_ca is None else read_pem(tls_ca, "--tls-ca"),
        private_key=None if tls_key is None else read_pem(tls_key, "--tls-key"),
        certificate_chain=None if tls_cert is None else read_pem(tls_cert, "--tls-cert"),
    )
    return grpc.secure_channel(target, creds)


class AdminClient:
    """`hitl.admin.v1.AdminService` of one gateway. Raises ``grpc.RpcError`` on refusals."""

    def __init__(self, channel: grpc.Channel, key: str) -> None:
        self._channel = channel
        self._stub = admin_pb2_grpc.AdminServiceStub(channel)
        self._auth = (("authorization", f"Bearer {key}"),) if key else ()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._channel.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return (*self._auth, *carrier.items())

    def set_switch(self, kind: str, name: str, paused: bool, reason: str) -> SwitchRow:
        """Pause or resume; the switch as the gateway stored it."""
        request = pb.SetSwitchRequest(
            kind=kind_to_pb(kind), name=name, paused=paused, reason=reason
        )
        return switch_from_pb(self._stub.SetSwitch(request, metadata=self._metadata()).switch)

    def list_switches(self) -> list[SwitchRow]:
        """Every application's and backend's switch, as stored."""
        resp = self._stub.ListSwitches(pb.ListSwitchesRequest(), metadata=self._metadata())
        return [switch_from_pb(s) for s in resp.switches]

    def list_outbox(self, *, dead: bool, limit: int = 0) -> list[OutboxMessage]:
        """Dead-lettered outbox messages (``dead``) or those still to deliver, oldest first."""
        request = pb.ListOutboxRequest(dead=dead, limit=limit)
        resp = self._stub.ListOutbox(request, metadata=self._metadata())
        return [outbox_from_pb(m) for m in resp.messages]

    def resend_outbox(self, message_id: str) -> OutboxMessage:
        """Make a dead-lettered message due again; the message as stored now."""
        request = pb.ResendOutboxRequest(id=message_id)
        return outbox_from_pb(self._stub.ResendOutbox(request, metadata=self._metadata()))
