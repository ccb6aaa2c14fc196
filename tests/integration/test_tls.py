"""Transport security: TLS, mutual TLS identities, plaintext binding rules, rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.config import ConfigError, Settings
from gateway.core.auth import certificate_identity
from gateway.testing import create_api_key
from tests.integration.tls_certs import TestCA


@pytest.fixture
def pki(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path)


@pytest.fixture
async def tls_gateway(settings: Settings, pki: TestCA) -> AsyncIterator[Gateway]:
    cert, key = pki.issue("gateway", server=True)
    gw = Gateway(replace(settings, tls_cert=cert, tls_key=key, tls_client_ca=pki.ca_file))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


def _secure(gw: Gateway, pki: TestCA, client: tuple[Path, Path] | None) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca_file.read_bytes(),
        private_key=client[1].read_bytes() if client else None,
        certificate_chain=client[0].read_bytes() if client else None,
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{gw.grpc_port}", creds)


def _request(app: str) -> pb.DecideRequest:
    req = pb.DecideRequest(application=app)
    req.input.update({"score": 0.9})
    return req


async def test_plaintext_client_cannot_talk_to_tls_port(tls_gateway: Gateway) -> None:
    """A plaintext client against the TLS port fails to connect."""
    key = await create_api_key(tls_gateway, "t-echo")
    async with AsyncGatewayClient(
        f"127.0.0.1:{tls_gateway.grpc_port}", api_key=key, timeout=3
    ) as c:
        with pytest.raises(GatewayCallError) as err:
            await c.decide("t-echo", {"score": 0.9})
    assert err.value.code is grpc.StatusCode.UNAVAILABLE


async def test_unknown_client_certificate_is_refused(
    tls_gateway: Gateway, tmp_path: Path, pki: TestCA
) -> None:
    """A client certificate from another CA fails the handshake."""
    stranger = TestCA(tmp_path, "other-ca").issue("intruder")
    async with _secure(tls_gateway, pki, stranger) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.DecisionGatewayStub(channel).Decide(_request("t-echo"), timeout=3)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_certificate_identifies_its_application(tls_gateway: Gateway, pki: TestCA) -> None:
    """A registered client certificate decides for its application without a key, and only it."""
    await tls_gateway.store.add_api_key(certificate_identity("credit-app", ("t-echo",)))
    async with _secure(tls_gateway, pki, pki.issue("credit-app")) as channel:
        stub = pb_grpc.DecisionGatewayStub(channel)
        decision = await stub.Decide(_request("t-echo"), timeout=5)
        assert decision.status == pb.APPROVED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Decide(_request("credit-limit"), timeout=5)
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    async with _secure(tls_gateway, pki, pki.issue("unregistered-app")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.DecisionGatewayStub(channel).Decide(_request("t-echo"), timeout=5)
        assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_bearer_key_still_works_over_tls(tls_gateway: Gateway, pki: TestCA) -> None:
    """Over mutual TLS a bearer key takes precedence over the certificate, with its own scope."""
    key = await create_api_key(tls_gateway, "t-echo")
    async with _secure(tls_gateway, pki, pki.issue("any-client")) as channel:
        decision = await pb_grpc.DecisionGatewayStub(channel).Decide(
            _request("t-echo"), metadata=(("authorization", f"Bearer {key}"),), timeout=5
        )
    assert decision.status == pb.APPROVED


@pytest.mark.parametrize("field", ["grpc_host", "http_host"])
async def test_plaintext_beyond_loopback_is_refused(settings: Settings, field: str) -> None:
    """Binding a public address without TLS stops start-up unless explicitly allowed."""
    with pytest.raises(ConfigError, match=field):
        await Gateway(replace(settings, **{field: "0.0.0.0"})).start()


async def test_rate_limit_answers_resource_exhausted_with_pushback(settings: Settings) -> None:
    """A key over its rate gets RESOURCE_EXHAUSTED and a retry hint; others are unaffected."""
    async with Gateway(replace(settings, rate_limit=1.0, rate_burst=3.0)) as gw:
        greedy = await create_api_key(gw, "t-echo")
        other = await create_api_key(gw, "t-echo")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
            stub = pb_grpc.DecisionGatewayStub(channel)
            for _ in range(3):
                await stub.Decide(
                    _request("t-echo"), metadata=(("authorization", f"Bearer {greedy}"),)
                )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Decide(
                    _request("t-echo"), metadata=(("authorization", f"Bearer {greedy}"),)
                )
            assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            trailers = dict(err.value.trailing_metadata() or ())
            assert 0 < int(trailers["grpc-retry-pushback-ms"]) <= 1000
            await stub.Decide(_request("t-echo"), metadata=(("authorization", f"Bearer {other}"),))


async def test_http_side_serves_tls(tls_gateway: Gateway, pki: TestCA) -> None:
    """The HTTP port (health, UI, metrics) speaks TLS with the same certificate, not plain HTTP."""
    import ssl

    import httpx

    context = ssl.create_default_context(cafile=str(pki.ca_file))
    async with httpx.AsyncClient(verify=context) as http:
        reply = await http.get(f"https://127.0.0.1:{tls_gateway.http_port}/healthz")
    assert reply.json() == {"status": "ok"}
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(f"http://127.0.0.1:{tls_gateway.http_port}/healthz")
