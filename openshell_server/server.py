"""Server factory: ``build_server(settings)`` returns the started-ready server and its bound port.

Tests bind port 0 and read the port back. Health checking (SERVING once the
default namespace and policies are ready) and reflection are registered here.

Listeners: the TCP one (``OPENSHELL_LISTEN``; TLS when ``OPENSHELL_TLS_CERT``/``_KEY`` are set)
and, in workstation mode, the Unix socket ``OPENSHELL_UNIX_SOCKET`` with its identity broker.
With no OIDC configured, a non-loopback TCP address is refused unless the operator sets
``OPENSHELL_ALLOW_INSECURE_LOCAL=1``.
"""

from __future__ import annotations

import logging
import os
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from openshell_server.api import SERVICES, openshell_pb2_grpc
from openshell_server.app import Gateway
from openshell_server.interceptor import AuthzInterceptor
from openshell_server.servicer import OpenShellServicer
from openshell_server.settings import Settings
from openshell_server.transport import (
    IdentityBroker,
    ServerTls,
    TransportError,
    is_local_address,
    is_loopback,
    prepare_socket_path,
)

__all__ = ["RunningServer", "build_server", "is_loopback"]

log = logging.getLogger("openshell.gateway")


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    gateway: Gateway
    health: health.HealthServicer
    broker: IdentityBroker | None = None
    unix_socket: Path | None = None
    tls: ServerTls | None = None

    def start(self) -> None:
        self.server.start()
        if self.unix_socket is not None:
            os.chmod(self.unix_socket, 0o666)  # any local account may connect; the broker says who it is
        if self.broker is not None:
            self.broker.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        for svc in SERVICES:
            self.health.set(svc.full_name, health_pb2.HealthCheckResponse.SERVING)
        self.gateway.policies.watch(self.gateway.settings.policy_reload_interval)
        self.gateway.background.start()

    def stop(self, grace: float | None = 5.0) -> None:
        self.health.enter_graceful_shutdown()  # NOT_SERVING while in-flight calls finish
        if self.broker is not None:
            self.broker.stop()
        self.server.stop(grace).wait()
        self.gateway.close()


def build_server(settings: Settings, *, max_workers: int = 16) -> RunningServer:
    """Wire the gateway and bind its listeners (not yet started); a bad listener setting exits with one line."""
    try:
        tls, socket_path = _check_listeners(settings)
    except TransportError as exc:
        raise SystemExit(f"openshell-gateway: {exc}") from None
    gateway = Gateway(settings)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        interceptors=[AuthzInterceptor(gateway)],
        # so_reuseport=0: a second gateway on the same port must fail, not silently share traffic.
        options=[("grpc.max_receive_message_length", 4 * 1024 * 1024), ("grpc.so_reuseport", 0),
                 # Let oversized tokens reach the authenticator (UNAUTHENTICATED + audit) instead of
                 # being cut off by gRPC with RESOURCE_EXHAUSTED before any audit is possible.
                 ("grpc.max_metadata_size", 64 * 1024)],
    )
    openshell_pb2_grpc.add_OpenShellServicer_to_server(OpenShellServicer(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [svc.full_name for svc in SERVICES] + [health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    port = 0
    broker = None
    try:
        if settings.listen:
            port = (
                server.add_secure_port(settings.listen, tls.credentials())
                if tls is not None
                else server.add_insecure_port(settings.listen)
            )
            if port == 0:
                raise TransportError(f"cannot listen on {settings.listen}")
        if socket_path is not None:
            # No TLS on the socket: only local accounts reach it, and each call carries a broker token.
            if server.add_insecure_port(f"unix:{socket_path}") == 0:
                raise TransportError(f"cannot listen on the Unix socket {socket_path}")
            broker = IdentityBroker(
                Path(f"{socket_path}.auth"), gateway.store, gateway.minter,
                gateway_id=settings.gateway_id, ttl_s=settings.workstation_token_ttl_seconds,
                max_members=settings.max_members, audit=gateway.audit_first_contact,
            )  # fmt: skip
    except (TransportError, OSError) as exc:
        server.stop(None)
        gateway.close()
        raise SystemExit(f"openshell-gateway: {exc}") from None
    _log_exposure(settings, tls)
    return RunningServer(server, port, gateway, health_servicer, broker, socket_path, tls)


def _check_listeners(settings: Settings) -> tuple[ServerTls | None, Path | None]:
    """Refuse listener settings that would expose the gateway; load the TLS files."""
    if not settings.listen and not settings.unix_socket:
        raise TransportError("OPENSHELL_LISTEN is empty and OPENSHELL_UNIX_SOCKET is not set: nothing to listen on")
    remote = bool(settings.listen) and not is_local_address(settings.listen)
    if remote and settings.local_mode and not settings.allow_insecure_local:
        raise TransportError(
            f"refusing to listen on {settings.listen}: with no OIDC issuer configured every caller is "
            "platform admin; bind a loopback address or a Unix socket, or set OPENSHELL_ALLOW_INSECURE_LOCAL=1"
        )
    tls = ServerTls.from_settings(settings)
    socket_path = prepare_socket_path(settings.unix_socket) if settings.unix_socket else None
    return tls, socket_path


def _log_exposure(settings: Settings, tls: ServerTls | None) -> None:
    remote = bool(settings.listen) and not is_local_address(settings.listen)
    if remote and settings.local_mode:
        log.warning(
            "INSECURE: no OIDC configured and listening on %s (OPENSHELL_ALLOW_INSECURE_LOCAL=1); every caller "
            "that reaches it is platform admin", settings.listen,
        )  # fmt: skip
    elif remote and tls is None:
        log.warning("listening on %s without TLS: bearer tokens cross the network in clear", settings.listen)
    if tls is not None:
        log.info("TLS on %s%s", settings.listen, " with client certificates required" if tls.mutual else "")
    if settings.unix_socket:
        log.info("workstation mode: socket %s, identity broker %s.auth", settings.unix_socket, settings.unix_socket)
