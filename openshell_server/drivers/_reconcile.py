"""Reconciliation between the gateway's store and what a driver reports (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from openshell_server.drivers._contract import DriverSandbox

__all__ = ["DEFAULT_NAMESPACE", "ReconcilePlan", "reconcile"]

DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class ReconcilePlan:
    """What the gateway should do: mark ``orphans`` Error, record ``adopt`` in the store.

    ``orphans`` are stored sandbox ids the driver no longer has; ``adopt`` pairs each
    unknown driver object with the OpenShell namespace it belongs to.
    """

    orphans: tuple[str, ...] = ()
    adopt: tuple[tuple[DriverSandbox, str], ...] = ()


def reconcile(stored: Iterable[tuple[str, str]], observed: Iterable[DriverSandbox]) -> ReconcilePlan:
    """Compare stored ``(sandbox_id, namespace)`` pairs with the driver's sandboxes.

    An unknown driver object is adopted into the namespace its labels name, or
    ``default`` when they name none. The store stays authoritative for known ids: a
    label naming another namespace never moves a stored sandbox.
    """
    stored_ids = {sandbox_id for sandbox_id, _ in stored}
    observed_by_id: dict[str, DriverSandbox] = {}
    for sandbox in observed:
        observed_by_id.setdefault(sandbox.id, sandbox)
    orphans = tuple(sorted(stored_ids - observed_by_id.keys()))
    adopt = tuple(
        (sandbox, sandbox.namespace or DEFAULT_NAMESPACE)
        for sandbox_id, sandbox in sorted(observed_by_id.items())
        if sandbox_id not in stored_ids
    )
    return ReconcilePlan(orphans=orphans, adopt=adopt)
