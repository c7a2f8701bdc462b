"""The OpenShell gRPC API: re-exports the modules generated from ``proto/openshell/v1``.

Import the API from here, never from ``openshell_server._gen`` directly. In a source
checkout the generated modules are (re)built on import when they are missing or the
``.proto`` files changed since they were generated (an editable install does not
rebuild them on every proto edit); an installed wheel ships them prebuilt.
"""

from __future__ import annotations

from openshell_server._codegen import ensure_generated

ensure_generated()

# Imported after generation on purpose: the modules may not exist before it.
from google.protobuf.descriptor import MethodDescriptor  # noqa: E402

from openshell_server._gen.openshell.v1 import (  # noqa: E402
    authz_pb2,
    openshell_pb2,
    openshell_pb2_grpc,
    resources_pb2,
)

__all__ = [
    "SERVICES",
    "authz_pb2",
    "method_authz",
    "methods",
    "openshell_pb2",
    "openshell_pb2_grpc",
    "resources_pb2",
]

# Every service of the API (their methods all carry the (openshell.v1.authz) option).
SERVICES = tuple(openshell_pb2.DESCRIPTOR.services_by_name.values())


def methods() -> dict[str, MethodDescriptor]:
    """Every RPC keyed by its wire path, e.g. ``/openshell.v1.OpenShell/CreateSandbox``."""
    return {f"/{svc.full_name}/{m.name}": m for svc in SERVICES for m in svc.methods}


def method_authz(method: MethodDescriptor) -> authz_pb2.Authz | None:
    """The ``(openshell.v1.authz)`` annotation of ``method``, or None when it has none."""
    options = method.GetOptions()
    if not options.HasExtension(authz_pb2.authz):
        return None
    return options.Extensions[authz_pb2.authz]
