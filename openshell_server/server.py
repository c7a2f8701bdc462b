"""Server factory: ``build_server(settings)`` returns the started-ready server and its bound port.

Tests bind port 0 and read the port back. Health checking (SERVING once the
default namespace and policies are ready) and reflection are registered here.
"""

from __future__ import annotations

import ipaddress
import logging
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from openshell_server.api import SERVICES, openshell_pb2_grpc
from openshell_server.app import Gateway
from openshell_server.interceptor import AuthzInterceptor
from openshell_server.servicer import OpenShellServicer
from openshell_server.settings import Settings

__all__ = ["RunningServer", "build_server", "is_loopback"]

log = logging.getLogger("openshell.gateway")


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    gateway: Gateway
    health: health.HealthServicer

    def start(self) -> None:
        self.server.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        for svc in SERVICES:
            self.health.set(svc.full_name, health_pb2.HealthCheckResponse.SERVING)
        self.gateway.policies.watch(self.gateway.settings.policy_reload_interval)

    def stop(self, grace: float | None = 5.0) -> None:
        self.health.enter_graceful_shutdown()  # NOT_SERVING while in-flight calls finish
        self.server.stop(grace).wait()
        self.gateway.close()


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_server(settings: Settings, *, max_workers: int = 16) -> RunningServer:
    """Wire the gateway and bind its listener (not yet started)."""
    host, _, port_text = settings.listen.rpartition(":")
    if settings.local_mode and not is_loopback(host) and not settings.allow_insecure_local:
        raise SystemExit(
            f"refusing to listen on {settings.listen}: with no OIDC issuer configured every caller is platform admin; "
            "bind a loopback address or set OPENSHELL_ALLOW_INSECURE_LOCAL=1"
        )
    gateway = Gateway(settings)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        interceptors=[AuthzInterceptor(gateway)],
        # so_reuseport=0: a second gateway on the same port must fail, not silently share traffic.
        options=[("grpc.max_receive_message_length", 4 * 1024 * 1024), ("grpc.so_reuseport", 0)],
    )
    openshell_pb2_grpc.add_OpenShellServicer_to_server(OpenShellServicer(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [svc.full_name for svc in SERVICES] + [health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port(f"{host}:{port_text}")
    if port == 0:
        raise SystemExit(f"cannot listen on {settings.listen}")
    if settings.local_mode and not is_loopback(host):
        log.warning("INSECURE: no OIDC configured and listening on %s; every caller is platform admin", settings.listen)
    return RunningServer(server, port, gateway, health_servicer)
