"""Compute drivers: where sandboxes actually run (SPEC.md §8).

The gateway picks one with :func:`get_driver` (``OPENSHELL_DRIVER``: ``local`` or
``kubernetes``), hands it :class:`SandboxSpec` objects whose namespace it has
already resolved and authorized, and feeds :func:`reconcile` with what the driver
reports. Drivers know nothing of principals or roles.
"""

from typing import TYPE_CHECKING, Any

from openshell_server.drivers._contract import (
    ComputeDriver,
    DriverError,
    DriverEvent,
    DriverSandbox,
    DriverUnavailable,
    ExecChunk,
    ExecResult,
    NamespaceMissing,
    SandboxNotFound,
    SandboxPhase,
    SandboxSpec,
    validate_dns_label,
)
from openshell_server.drivers._local import BWRAP_MISSING, LocalDriver
from openshell_server.drivers._reconcile import DEFAULT_NAMESPACE, ReconcilePlan, reconcile
from openshell_server.drivers._registry import DRIVER_NAMES, get_driver

if TYPE_CHECKING:
    from openshell_server.drivers._kubernetes import KubernetesDriver, managed_namespace_name

__all__ = [
    "BWRAP_MISSING",
    "DEFAULT_NAMESPACE",
    "DRIVER_NAMES",
    "ComputeDriver",
    "DriverError",
    "DriverEvent",
    "DriverSandbox",
    "DriverUnavailable",
    "ExecChunk",
    "ExecResult",
    "KubernetesDriver",
    "LocalDriver",
    "NamespaceMissing",
    "ReconcilePlan",
    "SandboxNotFound",
    "SandboxPhase",
    "SandboxSpec",
    "get_driver",
    "managed_namespace_name",
    "reconcile",
    "validate_dns_label",
]


def __getattr__(name: str) -> Any:
    # The Kubernetes client is heavy: load it only when the kubernetes driver is asked for.
    if name in ("KubernetesDriver", "managed_namespace_name"):
        from openshell_server.drivers import _kubernetes

        return getattr(_kubernetes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
