"""A real gateway on a loopback port for tests: real store file (or PostgreSQL), real JWKS issuer.

``GatewayUnderTest.client(token)`` returns a stub whose calls carry the bearer token;
``as_user(sub, roles=...)`` mints a real OIDC token from the fake issuer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from openshell_server.api import openshell_pb2 as api
from openshell_server.api import openshell_pb2_grpc
from openshell_server.server import RunningServer, build_server
from openshell_server.settings import OidcIssuerSettings, Settings
from tests.authn.oidc_fixture import FakeIssuer

__all__ = ["GatewayUnderTest", "Stub", "api", "call_status", "sandbox_key", "start_gateway"]


class Stub:
    """The generated stub with the token attached to every call."""

    def __init__(self, channel: grpc.Channel, token: str | None) -> None:
        self._stub = openshell_pb2_grpc.OpenShellStub(channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)

        def call(request: Any, **kwargs: Any) -> Any:
            return method(request, metadata=self._metadata, timeout=kwargs.pop("timeout", 30), **kwargs)

        return call


@dataclass
class GatewayUnderTest:
    running: RunningServer
    channel: grpc.Channel
    issuer: FakeIssuer | None
    data_dir: Path

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def gateway(self) -> Any:
        return self.running.gateway

    def client(self, token: str | None = None) -> Stub:
        return Stub(self.channel, token)

    def token(self, sub: str, roles: tuple[str, ...] = ()) -> str:
        assert self.issuer is not None, "this gateway runs in local mode"
        return self.issuer.issue(sub, roles=list(roles))

    def as_user(self, sub: str, roles: tuple[str, ...] = ()) -> Stub:
        return self.client(self.token(sub, roles))

    def principal_id(self, sub: str) -> str:
        assert self.issuer is not None
        return f"{self.issuer.issuer}#{sub}"


def call_status(method: Any, request: Any) -> tuple[grpc.StatusCode, str, Any]:
    """Call ``method`` (unary or server-streaming; streams are drained) and return (code, details, result)."""
    try:
        result = method(request)
        if hasattr(result, "__next__"):  # server streaming: errors surface while reading
            result = list(result)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", None
    return grpc.StatusCode.OK, "", result


def sandbox_key(sbx: Any) -> tuple[Any, ...]:
    """What a caller can change about a sandbox; phase and resource_version also move with the driver."""
    labels = tuple(sorted(sbx.meta.labels.items()))
    return (sbx.meta.id, sbx.meta.name, sbx.meta.namespace, tuple(sbx.providers), labels)


@contextmanager
def start_gateway(
    data_dir: Path, *, oidc: bool = True, database_url: str = "", **overrides: Any
) -> Iterator[GatewayUnderTest]:
    issuer = FakeIssuer(audience="openshell") if oidc else None
    try:
        settings = Settings(
            listen="127.0.0.1:0",
            data_dir=data_dir,
            database_url=database_url,
            oidc_issuers=[OidcIssuerSettings(issuer=issuer.issuer, audience="openshell", jwks_url=issuer.jwks_url)]
            if issuer
            else [],
            policy_reload_interval=0,
            **overrides,
        )
        running = build_server(settings)
        running.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        try:
            yield GatewayUnderTest(running, channel, issuer, data_dir)
        finally:
            channel.close()
            running.stop(grace=1)
    finally:
        if issuer is not None:
            issuer.stop()
