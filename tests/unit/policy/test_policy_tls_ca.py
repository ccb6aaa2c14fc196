"""A backend's ``tls_ca`` is checked at load: readable, PEM, found from the policy directory."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from policy_samples import WritePolicies

from gateway.cli import main
from gateway.errors import PolicyError
from gateway.policy import load_policies

BACKENDS = """\
backends:
  - {{name: scorer, kind: builtin, model: credit_v3, version: "3"}}
  - {{name: draft, kind: builtin, model: offer_v1, version: "1"}}
  - name: remote
    kind: oip
    target: "127.0.0.1:9"
    model: m
    version: "1"
    tls: {tls}
    tls_ca: {ca}
"""


def _ca_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "policy-test-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _backends(ca: str, tls: str = "true") -> str:
    return BACKENDS.format(tls=tls, ca=ca)


def test_ca_file_relative_to_the_policy_directory_loads_as_absolute_path(
    write_policies: WritePolicies,
) -> None:
    """A relative tls_ca is found in the policy directory, wherever the process runs from."""
    directory = write_policies(backends=_backends("certs/ca.pem"))
    (directory / "certs").mkdir()
    (directory / "certs" / "ca.pem").write_bytes(_ca_pem())
    spec = load_policies(directory).backends["remote"]
    assert spec.tls is True
    assert spec.tls_ca == str(directory / "certs" / "ca.pem")


@pytest.mark.parametrize(
    ("ca", "message"),
    [
        ("missing.pem", "cannot read CA file 'missing.pem': No such file or directory"),
        (".", "cannot read CA file '.': Is a directory"),
        ("not-pem.txt", "CA file 'not-pem.txt' holds no PEM certificate"),
    ],
)
def test_bad_ca_file_is_refused_naming_file_line_and_field(
    write_policies: WritePolicies, ca: str, message: str
) -> None:
    """A tls_ca that is missing, a directory or not PEM stops loading at backends[2].tls_ca."""
    directory = write_policies(backends=_backends(ca))
    (directory / "not-pem.txt").write_text("not a certificate\n")
    with pytest.raises(PolicyError, match=message) as caught:
        load_policies(directory)
    assert caught.value.field == "backends[2].tls_ca"
    assert caught.value.location == "backends.yaml:10"


def test_ca_without_tls_is_refused(write_policies: WritePolicies) -> None:
    """tls_ca only means something with tls: true."""
    directory = write_policies(backends=_backends("ca.pem", tls="false"))
    with pytest.raises(PolicyError, match="tls_ca needs tls: true") as caught:
        load_policies(directory)
    assert caught.value.field == "backends[2].tls_ca"


def test_policy_check_reports_a_missing_ca_file(
    write_policies: WritePolicies, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy check` exits 1 and prints the file, line, field and reason for a missing CA file."""
    directory = write_policies(backends=_backends("/nonexistent/ca.pem"))
    assert main(["policy", "check", str(directory)]) == 1
    err = capsys.readouterr().err
    assert "backends.yaml:10: backends[2].tls_ca: cannot read CA file '/nonexistent/ca.pem'" in err
