"""The CLI verifies the gateway's TLS certificate against ``--ca-file`` and can present a client certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from openshell_server.api import openshell_pb2 as pb
from openshell_server.cli import main

from .fake_gateway import FakeGateway, serve

Pem = tuple[bytes, bytes]  # (certificate, private key)


def _issue(
    common_name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = _issue("test-ca", None)
    other_ca = _issue("other-ca", None)
    files: dict[str, Path] = {}
    for name, (cert, key) in {
        "ca": _pem(*ca),
        "other_ca": _pem(*other_ca),
        "server": _pem(*_issue("gateway", ca)),
        "client": _pem(*_issue("client", ca)),
    }.items():
        for suffix, data in (("cert", cert), ("key", key)):
            files[f"{name}_{suffix}"] = tmp_path / f"{name}.{suffix}"
            files[f"{name}_{suffix}"].write_bytes(data)
    return files


@pytest.fixture
def tls_gateway(pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGateway]:
    """A fake gateway that serves TLS and requires a client certificate issued by the test CA."""
    credentials = grpc.ssl_server_credentials(
        [(pki["server_key"].read_bytes(), pki["server_cert"].read_bytes())],
        root_certificates=pki["ca_cert"].read_bytes(),
        require_client_auth=True,
    )
    fake = FakeGateway()
    server = serve(fake, credentials)
    for name in ("OPENSHELL_TOKEN", "OPENSHELL_NAMESPACE", "OPENSHELL_CA_FILE", "OPENSHELL_GATEWAY"):
        monkeypatch.delenv(name, raising=False)
    yield fake
    server.stop(grace=None)


def test_verified_tls_with_client_certificate(tls_gateway: FakeGateway, pki, capsys, monkeypatch) -> None:
    monkeypatch.setenv("OPENSHELL_CA_FILE", str(pki["ca_cert"]))
    tls_gateway.reply("WhoAmI", pb.WhoAmIResponse(principal_id="x509:client", kind="user"))
    code = main(
        [
            "--gateway",
            tls_gateway.address,
            "--cert-file",
            str(pki["client_cert"]),
            "--key-file",
            str(pki["client_key"]),
            "--token",
            "t",
            "whoami",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert tls_gateway.only_call().metadata["authorization"] == "Bearer t"


@pytest.mark.parametrize("ca", ["other_ca_cert", None])
def test_unverifiable_or_plaintext_connection_fails(tls_gateway: FakeGateway, pki, capsys, ca) -> None:
    argv = [
        "--gateway",
        tls_gateway.address,
        "--cert-file",
        str(pki["client_cert"]),
        "--key-file",
        str(pki["client_key"]),
    ]
    if ca is None:
        argv = argv[:2]  # plaintext against a TLS listener
    else:
        argv += ["--ca-file", str(pki[ca])]
    assert main([*argv, "whoami"]) == 24
    assert capsys.readouterr().err.startswith("error: UNAVAILABLE")
    assert tls_gateway.calls == []


def test_missing_ca_file_is_a_usage_error(capsys, tmp_path: Path) -> None:
    assert main(["--ca-file", str(tmp_path / "nope.pem"), "whoami"]) == 2
    assert (
        capsys.readouterr().err
        == f"error: cannot read --ca-file {tmp_path / 'nope.pem'}: No such file or directory\n"
    )


def test_client_cert_without_key_is_a_usage_error(capsys, pki) -> None:
    assert main(["--cert-file", str(pki["client_cert"]), "whoami"]) == 2
    assert capsys.readouterr().err == "error: --cert-file and --key-file go together\n"
