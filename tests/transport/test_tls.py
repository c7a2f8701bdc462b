"""TLS and mTLS on a real gateway (127.0.0.1, port 0) with certificates generated per test.

Covers: plaintext and wrong-CA clients refused, expired certificates refused on both sides,
a rotated certificate picked up with no restart, a bad rotation keeping the old certificate,
and a client certificate's subject becoming an ``x509:`` principal that gains access through
AddMember like any other.
"""

from __future__ import annotations

import json
import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from openshell_server.api import openshell_pb2 as api
from openshell_server.api import openshell_pb2_grpc
from openshell_server.cli import main
from openshell_server.transport import ServerTls, TransportError
from tests.gateway.harness import GatewayUnderTest, start_gateway

from .certs import Issued, issue, write_pair

_CLI_ENV = (
    "OPENSHELL_GATEWAY", "OPENSHELL_TOKEN", "OPENSHELL_NAMESPACE", "OPENSHELL_UNIX_SOCKET",
    "OPENSHELL_TLS_CA", "OPENSHELL_TLS_CERT", "OPENSHELL_TLS_KEY",
    "OPENSHELL_CA_FILE", "OPENSHELL_CLIENT_CERT", "OPENSHELL_CLIENT_KEY",
)  # fmt: skip


@dataclass
class Pki:
    dir: Path
    ca: Issued
    other_ca: Issued

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path

    def leaf(self, name: str, subject: str | x509.Name, *, ca: Issued | None = None, **kw: bool) -> tuple[Path, Path]:
        issued = issue(subject, ca or self.ca, **kw)
        return self.write(f"{name}.crt", issued.cert_pem), self.write(f"{name}.key", issued.key_pem)

    @property
    def ca_file(self) -> Path:
        return self.write("ca.pem", self.ca.cert_pem)

    @property
    def other_ca_file(self) -> Path:
        return self.write("other-ca.pem", self.other_ca.cert_pem)


@pytest.fixture(autouse=True)
def _clean_cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _CLI_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    directory.mkdir()
    return Pki(directory, issue("test-ca"), issue("other-ca"))


def _tls_gateway(tmp_path: Path, pki: Pki, *, oidc: bool = False, mutual: bool = False,
                 expired: bool = False) -> AbstractContextManager[GatewayUnderTest]:
    cert, key = pki.leaf("server", "gateway", server=True, expired=expired)
    extra = {"tls_client_ca": pki.ca_file} if mutual else {}
    return start_gateway(tmp_path / "data", oidc=oidc, tls_cert=cert, tls_key=key, **extra)


def _channel(port: int, ca: Path | None, client: tuple[Path, Path] | None = None) -> grpc.Channel:
    # A local subchannel pool: every channel makes its own handshake (no connection reuse across tests).
    options = [("grpc.use_local_subchannel_pool", 1)]
    if ca is None and client is None:
        return grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes() if ca else None,
        private_key=client[1].read_bytes() if client else None,
        certificate_chain=client[0].read_bytes() if client else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", creds, options=options)


def _whoami(port: int, ca: Path | None, client: tuple[Path, Path] | None = None, token: str = "") -> str:
    """The caller's principal id, or the failing status code's name."""
    with _channel(port, ca, client) as channel:
        stub = openshell_pb2_grpc.OpenShellStub(channel)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        try:
            return str(stub.WhoAmI(api.WhoAmIRequest(), metadata=metadata, timeout=10).principal_id)
        except grpc.RpcError as exc:
            return str(exc.code().name)  # type: ignore[attr-defined]


def test_tls_gateway_serves_verified_clients_and_refuses_plaintext_and_wrong_ca(
    tmp_path: Path, pki: Pki, capsys
) -> None:
    with _tls_gateway(tmp_path, pki) as gw:
        assert _whoami(gw.port, pki.ca_file) == "local"
        assert _whoami(gw.port, None) == "UNAVAILABLE"  # plaintext against TLS
        assert _whoami(gw.port, pki.other_ca_file) == "UNAVAILABLE"
        address = f"127.0.0.1:{gw.port}"
        assert main(["--gateway", address, "--tls-ca", str(pki.ca_file), "whoami"]) == 0
        assert "local" in capsys.readouterr().out
        assert main(["--gateway", address, "whoami"]) == 24
        assert capsys.readouterr().err.startswith("error: UNAVAILABLE")
        assert main(["--gateway", address, "--tls-ca", str(pki.other_ca_file), "whoami"]) == 24
        assert capsys.readouterr().err.startswith("error: UNAVAILABLE")


def test_expired_server_certificate_is_refused_by_the_client(tmp_path: Path, pki: Pki) -> None:
    with _tls_gateway(tmp_path, pki, expired=True) as gw:
        assert _whoami(gw.port, pki.ca_file) == "UNAVAILABLE"


def test_mtls_refuses_missing_foreign_and_expired_client_certificates(tmp_path: Path, pki: Pki) -> None:
    good = pki.leaf("good", "good-client")
    foreign = pki.leaf("foreign", "foreign-client", ca=pki.other_ca)
    expired = pki.leaf("expired", "expired-client", expired=True)
    with _tls_gateway(tmp_path, pki, mutual=True) as gw:
        assert _whoami(gw.port, pki.ca_file, good) == "x509:CN=good-client"
        assert _whoami(gw.port, pki.ca_file) == "UNAVAILABLE"
        assert _whoami(gw.port, pki.ca_file, foreign) == "UNAVAILABLE"
        assert _whoami(gw.port, pki.ca_file, expired) == "UNAVAILABLE"


def test_rotated_certificate_is_used_without_restart(tmp_path: Path, pki: Pki, caplog) -> None:
    with _tls_gateway(tmp_path, pki) as gw:
        cert, key = gw.running.gateway.settings.tls_cert, gw.running.gateway.settings.tls_key
        assert _whoami(gw.port, pki.ca_file) == "local"
        assert _whoami(gw.port, pki.other_ca_file) == "UNAVAILABLE"

        write_pair(issue("gateway-2", pki.other_ca, server=True), cert, key)
        assert _whoami(gw.port, pki.other_ca_file) == "local"
        assert _whoami(gw.port, pki.ca_file) == "UNAVAILABLE"  # the old certificate is gone

        # A rotation that does not load (key of another certificate) keeps the current one.
        caplog.set_level(logging.ERROR, logger="openshell.gateway")
        cert.write_bytes(issue("gateway-3", pki.ca, server=True).cert_pem)
        assert _whoami(gw.port, pki.other_ca_file) == "local"
        assert _whoami(gw.port, pki.ca_file) == "UNAVAILABLE"
        assert any("do not load" in r.getMessage() for r in caplog.records)


def test_bad_tls_settings_stop_the_start_with_one_line(tmp_path: Path, pki: Pki) -> None:
    cert, key = pki.leaf("server", "gateway", server=True)
    _, other_key = pki.leaf("other", "other", server=True)
    with pytest.raises(TransportError, match="does not belong to the certificate"):
        ServerTls(cert, other_key)
    with pytest.raises(TransportError, match="cannot read the TLS certificate"):
        ServerTls(tmp_path / "missing.crt", key)
    with (
        pytest.raises(SystemExit, match="OPENSHELL_TLS_CERT and OPENSHELL_TLS_KEY go together"),
        start_gateway(tmp_path / "data", oidc=False, tls_cert=cert),
    ):
        pass


def test_client_certificate_subject_is_a_principal_that_gains_access_through_membership(
    tmp_path: Path, pki: Pki, capsys
) -> None:
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Corp"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Jane Doe"),
    ])  # fmt: skip
    jane_cert, jane_key = pki.leaf("jane", subject)
    admin_client = pki.leaf("admin", "admin-workstation")
    principal = "x509:" + subject.rfc4514_string().replace(" ", "\\20")
    with _tls_gateway(tmp_path, pki, oidc=True, mutual=True) as gw:
        jane = ["--gateway", f"127.0.0.1:{gw.port}", "--tls-ca", str(pki.ca_file),
                "--tls-cert", str(jane_cert), "--tls-key", str(jane_key)]  # fmt: skip
        assert main([*jane, "-o", "json", "whoami"]) == 0
        who = json.loads(capsys.readouterr().out)
        assert (who["principal_id"], who["kind"], who["global_roles"]) == (principal, "user", [])

        admin_token = gw.token("root-admin", roles=("platform_admin",))
        with _channel(gw.port, pki.ca_file, admin_client) as channel:
            admin = openshell_pb2_grpc.OpenShellStub(channel)
            md = (("authorization", f"Bearer {admin_token}"),)
            admin.CreateNamespace(api.CreateNamespaceRequest(name="team"), metadata=md, timeout=10)

            assert main([*jane, "-n", "team", "sandbox", "list"]) == 15  # NOT_FOUND: not a member yet
            assert "NOT_FOUND" in capsys.readouterr().err

            admin.AddMember(api.AddMemberRequest(namespace="team", principal=principal, role="user"),
                            metadata=md, timeout=10)  # fmt: skip
        assert main([*jane, "-n", "team", "-o", "json", "sandbox", "list"]) == 0
        assert json.loads(capsys.readouterr().out)["sandboxes"] == []
        assert main([*jane, "-o", "json", "whoami"]) == 0
        memberships = json.loads(capsys.readouterr().out)["memberships"]
        assert [(m["namespace"], m["role"]) for m in memberships] == [("team", "user")]


def test_bearer_token_decides_over_the_client_certificate(tmp_path: Path, pki: Pki) -> None:
    client = pki.leaf("c", "someone")
    with _tls_gateway(tmp_path, pki, oidc=True, mutual=True) as gw:
        token = gw.token("alice")
        assert _whoami(gw.port, pki.ca_file, client, token=token) == gw.principal_id("alice")
        assert _whoami(gw.port, pki.ca_file, client, token="not-a-jwt") == "UNAUTHENTICATED"
