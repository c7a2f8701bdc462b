"""How callers reach the gateway and who the transport says they are.

* :class:`ServerTls` — the listener's TLS credentials from PEM files, re-read when the files
  change (a new certificate is used from the next handshake, no restart), with optional
  client-certificate verification (mTLS).
* :class:`CallerIdentification` — per call: bearer token -> identity; else a verified client
  certificate -> ``x509:<subject>``; else the local single-player identity, which a workstation
  gateway never grants (any local account can reach its socket).
* :class:`IdentityBroker` — workstation mode. gRPC does not expose ``SO_PEERCRED`` to handlers,
  so a second Unix socket next to the gateway's (``<socket>.auth``) reads the peer's uid from
  the kernel, maps it to the account name and returns a short-lived gateway-minted token for
  ``unix:<name>`` (root carries the ``platform_admin`` role as a fact on the token). The
  client sends nothing the broker reads, so there is nothing to forge. First contact creates
  the account's namespace ``user-<name>`` with it as namespace admin (:func:`first_contact`).
* :func:`fetch_broker_token` — the client side of the broker (in :mod:`openshell_server.cli._broker`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import pwd
import re
import socket
import socketserver
import stat
import struct
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from openshell_server import facts, validation
from openshell_server import store as st
from openshell_server.authn import AuthenticationError, Authenticator, Identity, TokenMinter, x509_identity

# The broker's wire protocol and the address helpers live with the client, so that the CLI
# does not import the server (the store alone takes a second to import).
from openshell_server.cli._broker import (
    BROKER_SUFFIX,
    DEFAULT_UNIX_SOCKET,
    BrokerGrant,
    TransportError,
    fetch_broker_token,
    is_local_address,
    is_loopback,
)

if TYPE_CHECKING:
    from openshell_server.settings import Settings

__all__ = [
    "BROKER_SUFFIX",
    "DEFAULT_UNIX_SOCKET",
    "BrokerGrant",
    "CallerIdentification",
    "IdentityBroker",
    "ServerTls",
    "TransportError",
    "fetch_broker_token",
    "first_contact",
    "is_local_address",
    "is_loopback",
    "personal_namespace",
    "prepare_socket_path",
]

log = logging.getLogger("openshell.gateway")

INSECURE_WARN_EVERY = 1000
_BROKER_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- addresses


# --------------------------------------------------------------------------- TLS


def _read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TransportError(f"cannot read the {what} {path}: {exc.strerror}") from None


def _load_tls(cert_path: Path, key_path: Path, ca_path: Path | None) -> tuple[bytes, bytes, bytes | None]:
    """Read and check the PEM files: a certificate chain, its private key, the client CA bundle."""
    cert, key = _read_pem(cert_path, "TLS certificate"), _read_pem(key_path, "TLS key")
    try:
        chain = x509.load_pem_x509_certificates(cert)
    except ValueError:
        raise TransportError(f"{cert_path} holds no PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise TransportError(f"{key_path} is not an unencrypted PEM private key") from None
    if chain[0].not_valid_after_utc < datetime.now(UTC):
        # Served anyway (it may be replaced any moment, and is reloaded then); clients will refuse it.
        log.warning("the TLS certificate %s expired on %s", cert_path, chain[0].not_valid_after_utc.isoformat())
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(*raw) != private.public_key().public_bytes(*raw):
        raise TransportError(f"the key {key_path} does not belong to the certificate {cert_path}")
    ca = None
    if ca_path is not None:
        ca = _read_pem(ca_path, "client CA bundle")
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError:
            raise TransportError(f"{ca_path} holds no PEM certificate") from None
    return cert, key, ca


def _fingerprint(paths: list[Path]) -> tuple[tuple[int, int, int], ...]:
    out = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            out.append((-1, -1, -1))
            continue
        out.append((info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(out)


class ServerTls:
    """The listener's TLS configuration, re-read when its files change.

    gRPC calls :meth:`_fetch` before each handshake; it costs a ``stat`` per file. A change that
    does not load (a half-written file, a key that does not match) keeps the old certificate and
    is logged once per change.
    """

    def __init__(self, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        self._paths = [cert, key] + ([client_ca] if client_ca else [])
        self._cert, self._key, self._ca = cert, key, client_ca
        self._lock = threading.Lock()
        self._seen = _fingerprint(self._paths)
        self._initial = self._configuration(*_load_tls(cert, key, client_ca))
        self.reloads = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerTls | None:
        cert, key, ca = settings.tls_cert, settings.tls_key, settings.tls_client_ca
        if cert is None and key is None:
            if ca is not None:
                raise TransportError("OPENSHELL_TLS_CLIENT_CA needs OPENSHELL_TLS_CERT and OPENSHELL_TLS_KEY")
            return None
        if cert is None or key is None:
            raise TransportError("OPENSHELL_TLS_CERT and OPENSHELL_TLS_KEY go together; set both")
        return cls(Path(cert), Path(key), Path(ca) if ca else None)

    @property
    def mutual(self) -> bool:
        return self._ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial, self._fetch, require_client_authentication=self.mutual
        )

    @staticmethod
    def _configuration(cert: bytes, key: bytes, ca: bytes | None) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        seen = _fingerprint(self._paths)
        with self._lock:
            if seen == self._seen:
                return None
            self._seen = seen
            try:
                loaded = _load_tls(self._cert, self._key, self._ca)
            except TransportError as exc:
                log.error("TLS files changed but do not load; keeping the previous certificate: %s", exc)
                return None
            self.reloads += 1
        log.info("TLS certificate reloaded from %s", self._cert)
        return self._configuration(*loaded)


# --------------------------------------------------------------------------- per-call identity


def _peer_subject(ctx: grpc.ServicerContext) -> str | None:
    """The RFC 4514 subject of the client certificate the TLS handshake verified, if any."""
    pems = ctx.auth_context().get("x509_pem_cert")
    if not pems:
        return None
    return x509.load_pem_x509_certificate(pems[0]).subject.rfc4514_string()


class CallerIdentification:
    """Who is calling, from what the call and its transport carry (the interceptor's first step)."""

    def __init__(self, settings: Settings, authenticator: Authenticator) -> None:
        self._authenticator = authenticator
        self._workstation = bool(settings.unix_socket)
        self._insecure_listen = (
            settings.listen
            if settings.local_mode and settings.listen and not is_local_address(settings.listen)
            else ""
        )
        self._calls = itertools.count(1)

    def identify(self, ctx: grpc.ServicerContext, token: str | None) -> Identity:
        """A presented token decides; else a verified client certificate; else local mode (if allowed)."""
        if self._insecure_listen and next(self._calls) % INSECURE_WARN_EVERY == 0:
            log.warning(
                "INSECURE: no OIDC configured and listening on %s (OPENSHELL_ALLOW_INSECURE_LOCAL=1); "
                "every caller that reaches it is platform admin", self._insecure_listen,
            )  # fmt: skip
        if token is not None:
            return self._authenticator.authenticate(token)
        subject = _peer_subject(ctx)
        if subject is not None:
            return x509_identity(subject)
        if self._workstation:
            raise AuthenticationError(
                "no bearer token presented; on a workstation gateway the openshell CLI gets one from the "
                "identity broker socket"
            )
        return self._authenticator.authenticate(None)


# --------------------------------------------------------------------------- Unix sockets


def prepare_socket_path(path: str | os.PathLike[str]) -> Path:
    """Make the socket's directory (0755: every local account may connect) and clear a stale socket.

    Refuses a path held by a live listener or by something that is not a socket, and a directory
    others may write to without the sticky bit (anyone could replace the socket).
    """
    sock = Path(path)
    if not sock.is_absolute():
        raise TransportError(f"OPENSHELL_UNIX_SOCKET must be an absolute path (got {path})")
    parent = sock.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=0o755)
        os.chmod(parent, 0o755)  # mkdir's mode is filtered by the umask
    mode = parent.stat().st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        raise TransportError(f"{parent} is writable by every user; use a directory only its owner can write")
    for candidate in (sock, Path(f"{sock}{BROKER_SUFFIX}")):
        if not candidate.exists() and not candidate.is_symlink():
            continue
        if not stat.S_ISSOCK(candidate.lstat().st_mode):
            raise TransportError(f"{candidate} exists and is not a socket; remove it or choose another path")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(candidate))
        except OSError:
            candidate.unlink()  # left over from a gateway that did not shut down cleanly
        else:
            raise TransportError(f"another process is already listening on {candidate}")
        finally:
            probe.close()
    return sock


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def personal_namespace(username: str, gateway_id: str) -> str:
    """``user-<name>`` made a DNS-1123 label that fits the Kubernetes namespace name.

    Different accounts may map to the same name (``Ann`` and ``ann``, ``a.b`` and ``a_b``);
    :func:`first_contact` refuses the second one rather than merging them.
    """
    label = re.sub(r"[^a-z0-9]+", "-", username.lower()).strip("-")
    if not label:
        raise TransportError(f"the account name {username!r} has no letters or digits to name a namespace")
    budget = 63 - len(f"openshell-{gateway_id}-")
    name = f"user-{label}"[:budget].rstrip("-")
    return validation.namespace_name(name, gateway_id=gateway_id)


AuditHook = Callable[[str, str, str], None]  # (principal id, Cedar action, namespace) -> writes an event


def _no_audit(principal_id: str, action: str, namespace: str) -> None:
    return None


def first_contact(
    store: st.Store, principal_id: str, namespace: str, *, max_members: int = 1000, audit: AuditHook = _no_audit
) -> None:
    """Make sure ``namespace`` exists for ``principal_id``, created with it as namespace admin.

    A namespace of that name created by anyone else is a collision and is refused. Each write
    is audited inside its transaction, like a mutating RPC (no commit without its event).
    """
    try:
        with st.before_commit(lambda: audit(principal_id, "CreateNamespace", namespace)):
            ns = store.create_namespace(namespace, created_by=principal_id, labels={"openshell.io/workstation": "true"})
        log.info("first contact of %s: created namespace %s", principal_id, namespace)
    except st.AlreadyExists:
        ns = store.get_namespace_by_name(namespace)
        if ns.created_by != principal_id:
            raise TransportError(
                f"namespace {namespace} already exists and was not created for {principal_id}; "
                "ask an administrator to rename your account or that namespace"
            ) from None
        if store.list_memberships(ns.id):
            return  # members are the admins' business once the namespace has any
    with st.before_commit(lambda: audit(principal_id, "AddMember", namespace)):
        store.put_membership(ns.id, principal_id, "namespace_admin", created_by=principal_id, max_members=max_members)
    facts.forget_memberships(store, principal_id)  # seen on the very next call, not after the cache TTL


class IdentityBroker:
    """``<socket>.auth``: peer uid (``SO_PEERCRED``) -> account -> short-lived token for ``unix:<name>``."""

    def __init__(
        self,
        path: Path,
        store: st.Store,
        minter: TokenMinter,
        *,
        gateway_id: str,
        ttl_s: float,
        max_members: int = 1000,
        audit: AuditHook = _no_audit,
    ) -> None:
        self.path = path
        self._audit = audit
        self._store, self._minter = store, minter
        self._gateway_id, self._ttl_s, self._max_members = gateway_id, ttl_s, max_members
        broker = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                broker._serve(self.request)

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self._server = Server(str(path), Handler)
        os.chmod(path, 0o666)  # any local account may ask; the kernel tells us which one it is
        self._thread: threading.Thread | None = None

    def grant(self, uid: int) -> BrokerGrant:
        """Mint the token for the account with ``uid`` (after its first-contact namespace exists)."""
        try:
            username = pwd.getpwuid(uid).pw_name
        except KeyError:
            raise TransportError(f"uid {uid} has no account name on this host") from None
        principal = f"unix:{username}"
        namespace = personal_namespace(username, self._gateway_id)
        first_contact(self._store, principal, namespace, max_members=self._max_members, audit=self._audit)
        roles = frozenset({"platform_admin"}) if uid == 0 else frozenset()
        token, expires_at = self._minter.mint_user(username, namespace, self._ttl_s, global_roles=roles)
        return BrokerGrant(token, expires_at, principal, namespace)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(_BROKER_TIMEOUT_S)
        try:
            uid = _peer_uid(conn)
            grant = self.grant(uid)
            reply: dict[str, Any] = {
                "token": grant.token, "expires_at": grant.expires_at,
                "principal": grant.principal, "namespace": grant.namespace,
            }  # fmt: skip
        except (TransportError, st.StoreError, validation.InvalidArgument) as exc:
            reply = {"error": str(exc)}
        except Exception:
            log.exception("identity broker failed")
            reply = {"error": "the identity broker failed; see the gateway log"}
        with contextlib.suppress(OSError):  # the client went away; nothing to tell it
            conn.sendall(json.dumps(reply).encode("utf-8") + b"\n")
            conn.shutdown(socket.SHUT_WR)
            # Discard whatever the client sent (never read as input): closing with unread data would
            # reset the connection before the client has read the reply.
            conn.settimeout(1.0)
            for _ in range(16):
                if not conn.recv(4096):
                    break

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="identity-broker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
