"""The Polar twin: answers the same ``Request`` objects as the Cedar Authorizer, through oso.

Mirror classes carry the domain facts in plain Python (lists of ids, nested
objects) and are registered with oso under the names ``policies/polar/openshell.polar``
uses. oso is deprecated upstream and a test-only dependency: nothing in the
library or the gateway imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oso import Oso

from openshell_authz import (
    AttachContext,
    Gateway,
    ListContext,
    LocalPrincipal,
    MemberContext,
    Namespace,
    Provider,
    Quota,
    Request,
    Sandbox,
    ServiceAccount,
    ServiceAccountPrincipal,
    SupervisorPrincipal,
    UpdateNamespaceContext,
    UserPrincipal,
)
from openshell_authz.models import NamespaceRole

__all__ = ["POLAR_FILE", "PolarTwin", "to_polar"]

POLAR_FILE = Path(__file__).resolve().parents[2] / "policies" / "polar" / "openshell.polar"


@dataclass(frozen=True)
class Limits:
    max_sandboxes: int = 0
    max_gpus: int = 0
    max_sandbox_lifetime_seconds: int = 0


@dataclass(frozen=True)
class PNamespace:
    id: str
    name: str
    phase: str
    ceiling: Limits
    kind: str = "namespace"


@dataclass(frozen=True)
class PSandbox:
    id: str
    namespace: PNamespace
    provider_ids: list[str]
    kind: str = "sandbox"


@dataclass(frozen=True)
class PProvider:
    id: str
    namespace: PNamespace
    kind: str = "provider"


@dataclass(frozen=True)
class PServiceAccount:
    id: str
    namespace: PNamespace
    kind: str = "service_account"


@dataclass(frozen=True)
class PGateway:
    id: str = "gateway"
    kind: str = "gateway"


@dataclass(frozen=True)
class PUser:
    id: str
    global_roles: list[str]
    admin_of: list[str]
    user_of: list[str]
    auditor_of: list[str]


@dataclass(frozen=True)
class PServiceAccountActor:
    id: str
    namespace_id: str


@dataclass(frozen=True)
class PSupervisor:
    sandbox: PSandbox


@dataclass(frozen=True)
class PContext:
    all_namespaces: bool = False
    role: str = ""
    previous_role: str = ""
    member_kind: str = "user"
    changes_ceiling: bool = False
    changes_labels: bool = False
    limits: Limits = field(default_factory=Limits)
    provider: PProvider | None = None


@dataclass(frozen=True)
class Target:
    resource: Any
    context: PContext


_CLASSES: dict[str, type] = {
    "Limits": Limits,
    "Namespace": PNamespace,
    "Sandbox": PSandbox,
    "Provider": PProvider,
    "ServiceAccount": PServiceAccount,
    "Gateway": PGateway,
    "User": PUser,
    "ServiceAccountActor": PServiceAccountActor,
    "Supervisor": PSupervisor,
    "Context": PContext,
    "Target": Target,
}


def _limits(q: Quota) -> Limits:
    return Limits(q.max_sandboxes, q.max_gpus, q.max_sandbox_lifetime_seconds)


def _namespace(ns: Namespace) -> PNamespace:
    return PNamespace(ns.id, ns.name, str(ns.phase), _limits(ns.ceiling))


def _resource(obj: Any) -> Any:
    match obj:
        case Namespace():
            return _namespace(obj)
        case Sandbox():
            return PSandbox(obj.id, _namespace(obj.namespace), sorted(obj.provider_ids))
        case Provider():
            return PProvider(obj.id, _namespace(obj.namespace))
        case ServiceAccount():
            return PServiceAccount(obj.id, _namespace(obj.namespace))
        case Gateway():
            return PGateway(obj.id)
    raise TypeError(f"no Polar mirror for {type(obj).__name__}")


def _actor(principal: Any) -> Any:
    match principal:
        case UserPrincipal() | LocalPrincipal():
            def ids(role: NamespaceRole) -> list[str]:
                return [m.namespace_id for m in principal.memberships if m.role is role]

            return PUser(
                principal.id,
                sorted(str(r) for r in principal.global_roles),
                ids(NamespaceRole.NAMESPACE_ADMIN),
                ids(NamespaceRole.USER),
                ids(NamespaceRole.AUDITOR),
            )
        case ServiceAccountPrincipal():
            return PServiceAccountActor(principal.id, principal.namespace_id)
        case SupervisorPrincipal():
            return PSupervisor(_resource(principal.sandbox))
    raise TypeError(f"no Polar mirror for {type(principal).__name__}")


def _context(ctx: Any) -> PContext:
    match ctx:
        case None:
            return PContext()
        case ListContext():
            return PContext(all_namespaces=ctx.all_namespaces)
        case MemberContext():
            return PContext(role=str(ctx.role), previous_role=str(ctx.previous_role), member_kind=ctx.member_kind)
        case UpdateNamespaceContext():
            return PContext(
                changes_ceiling=ctx.changes_ceiling, changes_labels=ctx.changes_labels, limits=_limits(ctx.limits)
            )
        case AttachContext():
            return PContext(provider=_resource(ctx.provider))
        case Mapping():
            raise TypeError("the Polar twin takes typed contexts only")
    raise TypeError(f"no Polar mirror for {type(ctx).__name__}")


def to_polar(request: Request) -> tuple[Any, str, Target]:
    """(actor, action, target) for :meth:`Oso.is_allowed`."""
    return _actor(request.principal), request.action, Target(_resource(request.resource), _context(request.context))


class PolarTwin:
    """Loads ``openshell.polar`` once; :meth:`allowed` decides one request."""

    def __init__(self, polar_file: Path = POLAR_FILE) -> None:
        self.oso = Oso()
        for name, cls in _CLASSES.items():
            self.oso.register_class(cls, name=name)
        self.oso.load_files([str(polar_file)])

    def allowed(self, request: Request) -> bool:
        return bool(self.oso.is_allowed(*to_polar(request)))
