"""Typed domain model of the authorization world: principals, namespaces and resources.

These are the *facts* a gateway hands to the authorizer. They carry no rules:
what a role may do is decided only by the Cedar policies in ``policies/``.
Every model is frozen (hashable) so entity fragments built from it can be cached.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_NAMESPACE",
    "DNS1123_LABEL",
    "Gateway",
    "GlobalRole",
    "LocalPrincipal",
    "Membership",
    "Namespace",
    "NamespacePhase",
    "NamespaceRole",
    "Principal",
    "Provider",
    "Quota",
    "QuotaMode",
    "Resource",
    "Sandbox",
    "ServiceAccount",
    "ServiceAccountPrincipal",
    "SupervisorPrincipal",
    "UserPrincipal",
    "is_dns1123_label",
]

DEFAULT_NAMESPACE = "default"
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_dns1123_label(value: str, max_len: int = 63) -> bool:
    """True when ``value`` is a DNS-1123 label of at most ``max_len`` characters."""
    # fullmatch: "$" alone would also accept a trailing newline ("box\n").
    return 0 < len(value) <= max_len and DNS1123_LABEL.fullmatch(value) is not None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GlobalRole(StrEnum):
    """Roles granted gateway-wide (from an OIDC claim, or implicitly in local mode)."""

    PLATFORM_ADMIN = "platform_admin"
    AUDITOR = "auditor"


class NamespaceRole(StrEnum):
    """Roles granted inside one namespace by a membership record."""

    NAMESPACE_ADMIN = "namespace_admin"
    USER = "user"
    AUDITOR = "auditor"


class NamespacePhase(StrEnum):
    ACTIVE = "Active"
    TERMINATING = "Terminating"


class QuotaMode(StrEnum):
    HARD = "hard"
    SOFT = "soft"


class Quota(_Frozen):
    """Per-namespace limits. ``0`` means "no limit" for every numeric field."""

    max_sandboxes: int = Field(default=0, ge=0)
    max_gpus: int = Field(default=0, ge=0)
    max_sandbox_lifetime_seconds: int = Field(default=0, ge=0)
    quota_mode: QuotaMode = QuotaMode.HARD


class Membership(_Frozen):
    """A principal's role in one namespace, bound to the namespace's id (not its name)."""

    namespace_id: str
    role: NamespaceRole


# --------------------------------------------------------------------------- principals


class UserPrincipal(_Frozen):
    """A human or external machine identified by an issuer-qualified id (``<issuer>#<sub>``)."""

    kind: Literal["user"] = "user"
    id: str
    issuer: str = ""
    subject: str = ""
    global_roles: frozenset[GlobalRole] = frozenset()
    memberships: tuple[Membership, ...] = ()


class LocalPrincipal(_Frozen):
    """The caller in single-player mode (no OIDC configured)."""

    kind: Literal["local"] = "local"
    id: str = "local"
    issuer: str = "local"
    # Single-player mode grants the platform-admin role as a *fact*; the policies
    # decide what that role may do.
    global_roles: frozenset[GlobalRole] = frozenset({GlobalRole.PLATFORM_ADMIN})
    memberships: tuple[Membership, ...] = ()


class ServiceAccountPrincipal(_Frozen):
    """A gateway-minted machine identity, ``system:serviceaccount:<ns>:<name>``."""

    kind: Literal["service_account"] = "service_account"
    id: str  # the service account's object id
    name: str
    namespace_id: str
    namespace_name: str

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace_name}:{self.name}"



# --------------------------------------------------------------------------- resources


class Namespace(_Frozen):
    """An isolation boundary. ``id`` is stable; a re-created name gets a new id."""

    kind: Literal["namespace"] = "namespace"
    id: str
    name: str
    phase: NamespacePhase = NamespacePhase.ACTIVE
    quota: Quota = Quota()
    ceiling: Quota = Quota()
    labels: tuple[tuple[str, str], ...] = ()


class Gateway(_Frozen):
    """The gateway itself: target of config, namespace creation and cross-namespace lists."""

    kind: Literal["gateway"] = "gateway"
    id: str = "gateway"


class Sandbox(_Frozen):
    kind: Literal["sandbox"] = "sandbox"
    id: str
    name: str
    namespace: Namespace
    provider_ids: frozenset[str] = frozenset()
    created_by: str = ""


class Provider(_Frozen):
    kind: Literal["provider"] = "provider"
    id: str
    name: str
    namespace: Namespace


class ServiceAccount(_Frozen):
    kind: Literal["service_account"] = "service_account"
    id: str
    name: str
    namespace: Namespace


class SupervisorPrincipal(_Frozen):
    """The supervisor inside one sandbox; its token is bound to that sandbox's id.

    The gateway loads ``sandbox`` from its store on every call (never from the token),
    so attachments made after the token was minted are seen.
    """

    kind: Literal["supervisor"] = "supervisor"
    sandbox: Sandbox

    @property
    def id(self) -> str:
        return f"sandbox:{self.sandbox.id}"


Resource = Annotated[
    Namespace | Gateway | Sandbox | Provider | ServiceAccount,
    Field(discriminator="kind"),
]


Principal = Annotated[
    UserPrincipal | LocalPrincipal | ServiceAccountPrincipal | SupervisorPrincipal,
    Field(discriminator="kind"),
]
