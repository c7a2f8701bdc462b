"""The client side of the workstation identity broker, and address helpers shared with the gateway.

The broker listens on ``<gateway socket>.auth``. Its protocol: connect, read one JSON line,
``{"token", "expires_at", "principal", "namespace"}`` or ``{"error"}``. The client sends
nothing; the broker learns who is asking from the kernel (``SO_PEERCRED``). Kept free of
server imports so the CLI stays quick to start.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from dataclasses import dataclass

__all__ = [
    "BROKER_SUFFIX",
    "DEFAULT_UNIX_SOCKET",
    "BrokerGrant",
    "TransportError",
    "fetch_broker_token",
    "is_local_address",
    "is_loopback",
]

DEFAULT_UNIX_SOCKET = "/run/openshell/gateway.sock"
BROKER_SUFFIX = ".auth"
_TIMEOUT_S = 10.0
_MAX_REPLY = 64 * 1024


class TransportError(ValueError):
    """A listener, socket or TLS file cannot be used; ``str()`` is one line naming it and the fix."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_local_address(address: str) -> bool:
    """True for a Unix socket (``unix:/path``) or a loopback ``host:port``; anything else is remote.

    Also accepts gRPC target prefixes (``dns:///``, ``ipv4:``, ``ipv6:``); an address it cannot
    parse counts as remote.
    """
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    for prefix in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if address.startswith(prefix):
            address = address[len(prefix) :]
            break
    host, sep, _ = address.rpartition(":")
    return bool(sep) and is_loopback(host)


@dataclass(frozen=True, slots=True)
class BrokerGrant:
    """What the broker hands a local account: its token, principal and personal namespace."""

    token: str
    expires_at: float
    principal: str
    namespace: str


def fetch_broker_token(socket_path: str | os.PathLike[str], *, timeout_s: float = _TIMEOUT_S) -> BrokerGrant:
    """Ask the identity broker next to the gateway socket ``socket_path`` for this account's token.

    Raises :class:`TransportError` with a one-line reason.
    """
    path = f"{os.fspath(socket_path)}{BROKER_SUFFIX}"
    data = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        try:
            conn.connect(path)
            while len(data) < _MAX_REPLY:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise TransportError(f"cannot get a token from the identity broker {path}: {exc.strerror or exc}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise TransportError(f"the identity broker {path} sent an unreadable reply")
    if "error" in reply:
        raise TransportError(f"identity broker: {reply['error']}")
    try:
        return BrokerGrant(
            str(reply["token"]), float(reply["expires_at"]), str(reply["principal"]), str(reply["namespace"])
        )
    except (KeyError, TypeError, ValueError):
        raise TransportError(f"the identity broker {path} sent an incomplete reply") from None
