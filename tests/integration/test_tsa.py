"""Checkpoints time-stamped by a real RFC 3161 authority: ``openssl ts -reply`` behind an HTTP
handler on loopback, with a CA made here. Tokens are stored and checked; an authority that is
down never holds a decision, and its tokens arrive once it is back."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.app import Gateway
from gateway.audit import evidence_check, timestamps
from gateway.audit.checkpoints import public_key_pem
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.keys import generate_secrets
from gateway.testing import create_api_key
from tests.integration.serverproc import cli
from tests.pgserver import pg_server, with_search_path

__all__ = ["pg_server"]

GOOD = {"score": 0.9, "customer": {"name": "Someone"}}


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class Authority:
    """A test CA and a time-stamping certificate it issued, answering with ``openssl ts``."""

    def __init__(self, root: Path, label: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{label} CA"))
            .issuer_name(_name(f"{label} CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{label} TSA"))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.dir = root
        (root / "ca.pem").write_bytes(_pem(self.ca))
        (root / "tsa.pem").write_bytes(_pem(cert))
        (root / "tsa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (root / "serial").write_text("01\n")
        (root / "ts.cnf").write_text(
            f"""[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {root}
serial = $dir/serial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
        )
        self.up = True
        self.replies = 0

    def reply(self, query: bytes) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            q, r = Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
            q.write_bytes(query)
            subprocess.run(
                [
                    "openssl", "ts", "-reply", "-config", str(self.dir / "ts.cnf"),
                    "-queryfile", str(q), "-signer", str(self.dir / "tsa.pem"),
                    "-inkey", str(self.dir / "tsa.key"), "-out", str(r),
                ],
                check=True,
                capture_output=True,
            )  # fmt: skip
            self.replies += 1
            return r.read_bytes()


@pytest.fixture
def authority(tmp_path: Path) -> Iterator[tuple[Authority, str]]:
    """The authority behind an HTTP server on a loopback port of its own; ``up`` False makes
    it answer 503, as an authority in an outage."""
    tsa = Authority(tmp_path / "tsa", "Test")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if not tsa.up:
                self.send_response(503)
                self.end_headers()
                return
            data = tsa.reply(body)
            self.send_response(200)
            self.send_header("Content-Type", timestamps.CONTENT_TYPE_REPLY)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tsa, f"http://127.0.0.1:{server.server_address[1]}/tsa"
    finally:
        server.shutdown()
        server.server_close()


async def _until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.05)


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def shared(store_kind: str, pg_server: str, settings: Settings) -> AsyncIterator[Settings]:
    """``settings`` as they are (SQLite), or on a PostgreSQL schema of this test's own."""
    if store_kind != "postgres":
        yield settings
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    dsn = with_search_path(pg_server, schema)
    yield replace(settings, store=dsn, admin_password="x" * 16, **generate_secrets())
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


async def test_tokens_are_stored_checked_and_survive_an_outage(
    shared: Settings, authority: tuple[Authority, str], tmp_path: Path
) -> None:
    """With the authority down decisions go on and checkpoints are signed; once it is back,
    every checkpoint gets a token, which checks against its CA and fails against another."""
    tsa, url = authority
    tsa.up = False
    settings = replace(
        shared,
        tsa_url=url,
        tsa_ca_file=tsa.dir / "ca.pem",
        tsa_interval=0.1,
        tsa_warn_after=0.3,
        audit_checkpoint_seconds=0.1,
        audit_checkpoint_events=3,
    )
    gateway = Gateway(settings)
    await gateway.start()
    try:
        token = await create_api_key(gateway)
        async with AsyncGatewayClient(f"127.0.0.1:{gateway.grpc_port}", api_key=token) as c:
            ids = [(await c.decide("t-echo", GOOD)).id for _ in range(6)]
        assert len(ids) == 6  # every decision answered while the authority was down
        stamper = gateway.stamper
        assert stamper is not None
        side = await gateway.store.open_audit(gateway.signer.public_key)
        audit_log = side.log
        await asyncio.sleep(0.5)
        assert await audit_log.unstamped(100)  # signed, waiting for tokens
        assert stamper.stamped == 0
        # Waiting tokens are a warning of readiness, never a failure: decisions go on.
        ready = f"http://127.0.0.1:{gateway.http_port}/readyz"
        async with httpx.AsyncClient() as http:
            answer = await http.get(ready)
            assert answer.status_code == 200, answer.text
            assert "without a time-stamp token" in answer.json()["warnings"]["audit:timestamps"]
        tsa.up = True
        await _until(lambda: stamper.stamped > 0)
        await asyncio.sleep(0.3)
        for _ in range(100):
            if not await audit_log.unstamped(100):
                break
            await asyncio.sleep(0.1)
        assert not await audit_log.unstamped(100)
        async with httpx.AsyncClient() as http:
            assert (await http.get(ready)).json()["warnings"] == {}
        cp = await audit_log.latest_checkpoint()
        assert cp is not None
        stamp = await audit_log.timestamp(cp.seq)
        assert stamp is not None and stamp.tsa_url == url
        roots = timestamps.load_certificates((tsa.dir / "ca.pem").read_bytes())
        timestamps.check(stamp, cp, roots)
        other = Authority(tmp_path / "other", "Other")
        with pytest.raises(timestamps.TimeStampError, match="does not verify"):
            timestamps.check(stamp, cp, [other.ca])
        forged = timestamps.TimeStamp(cp.seq, other.reply(timestamps.request_bytes(cp)), url, "")
        timestamps.check(forged, cp, [other.ca])  # a good token of the other authority...
        with pytest.raises(timestamps.TimeStampError):
            timestamps.check(forged, cp, roots)  # ...is refused against this one's CA
        key = gateway.signer.public_key
        if side.close is not None:
            await side.close()
    finally:
        await gateway.stop()
    pem = tmp_path / "audit.pem"
    pem.write_text(public_key_pem(key))
    if settings.store.startswith("postgresql"):
        where: tuple[str, ...] = ("--store", settings.store, "--data-dir", str(tmp_path / "none"))
    else:
        db = str(settings.data_dir / "gateway.db")
        where = ("--db", db, "--data-dir", str(settings.data_dir))
    out = tmp_path / "pack.json"
    r = cli("audit", "evidence", ids[0], "-o", str(out), *where)
    assert r.returncode == 0, r.stderr
    pack = orjson.loads(out.read_bytes())
    check = ("audit", "check-evidence", str(out), "--public-key", str(pem))
    r = cli(*check, "--tsa-ca", str(tsa.dir / "ca.pem"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "time-stamp token: checkpoint" in r.stderr
    r = cli(*check, "--tsa-ca", str(tmp_path / "other" / "ca.pem"))
    assert r.returncode == 1
    assert "FAILED: time-stamp token: token does not verify" in r.stderr
    raw = base64.b64decode(pack["timestamp"]["token"])
    report = evidence_check.check(
        {
            **pack,
            "timestamp": {
                **pack["timestamp"],
                "token": base64.b64encode(raw[:-40] + bytes(40)).decode(),
            },
        },
        key,
        timestamps.load_certificates((tsa.dir / "ca.pem").read_bytes()),
    )
    assert [f.split(":")[0] for f in report.failures] == ["time-stamp token"]
