"""Driver selection by name (``OPENSHELL_DRIVER``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openshell_server.drivers._contract import ComputeDriver

__all__ = ["DRIVER_NAMES", "get_driver"]


def _local(**config: Any) -> ComputeDriver:
    from openshell_server.drivers._local import LocalDriver

    return LocalDriver(**config)


def _kubernetes(**config: Any) -> ComputeDriver:
    # Imported lazily so a local-only gateway never loads the Kubernetes client.
    from openshell_server.drivers._kubernetes import KubernetesDriver

    if config.get("api_client") is None:
        return KubernetesDriver.from_environment(**{k: v for k, v in config.items() if k != "api_client"})
    return KubernetesDriver(**config)


_FACTORIES: dict[str, Callable[..., ComputeDriver]] = {"local": _local, "kubernetes": _kubernetes}
DRIVER_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def get_driver(name: str = "local", **config: Any) -> ComputeDriver:
    """Build the driver called ``name`` ("local" or "kubernetes"; empty means "local").

    ``config`` goes to the driver's constructor: ``data_dir`` for local;
    ``gateway_id``, ``mode`` and optionally ``api_client`` for kubernetes (without one,
    in-cluster configuration or KUBECONFIG is loaded).
    """
    key = (name or "local").strip().lower()
    factory = _FACTORIES.get(key)
    if factory is None:
        raise ValueError(f"unknown compute driver {name!r}: choose one of {', '.join(DRIVER_NAMES)}")
    return factory(**config)
