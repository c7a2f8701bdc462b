"""The authenticated caller (:class:`Identity`) and the one error authentication raises.

An :class:`Identity` is a *fact* about who is calling, established from a bearer token
(or its absence in single-player mode). It carries no permissions: what a principal may
do is decided by the Cedar policies, never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "GLOBAL_ROLE_VALUES",
    "LOCAL_IDENTITY",
    "MINTED_ISSUER",
    "UNIX_PRINCIPAL_PREFIX",
    "X509_ISSUER",
    "AuthenticationError",
    "Identity",
    "IdentityKind",
    "parse_global_roles",
    "x509_identity",
]

# The ``iss`` of every gateway-minted token. No OIDC issuer may use it.
MINTED_ISSUER = "openshell-gateway"

# Workstation accounts (identity broker) are ``unix:<name>``; client certificates are
# ``x509:<subject>``. Neither can collide with an issuer-qualified OIDC id (``<issuer>#<sub>``).
UNIX_PRINCIPAL_PREFIX = "unix:"
X509_ISSUER = "x509"

IdentityKind = Literal["user", "service_account", "supervisor", "local"]

# The only global roles a token claim can grant; any other value in the claim is ignored
# (an IdP may put unrelated roles in the same claim).
GLOBAL_ROLE_VALUES: frozenset[str] = frozenset({"platform_admin", "auditor"})


class AuthenticationError(Exception):
    """The caller could not be authenticated.

    ``reason`` is one short line that is safe to return to the client: it never contains
    key material, token contents or a stack trace.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling, as established by authentication.

    ``principal_id`` is the stable id the gateway keys memberships and audit records on:
    ``<issuer>#<sub>`` for OIDC users, ``unix:<name>`` for workstation accounts,
    ``x509:<subject>`` for client certificates, ``system:serviceaccount:<ns>:<name>`` for service
    accounts, ``sandbox:<sandbox_id>`` for supervisors and ``local`` in single-player mode.
    """

    kind: IdentityKind
    principal_id: str
    issuer: str
    subject: str
    global_roles: frozenset[str] = frozenset()
    service_account_id: str | None = None
    namespace: str | None = None  # service account's or supervisor's namespace name
    sa_name: str | None = None
    sandbox_id: str | None = None
    expires_at: float | None = None  # seconds since the epoch; None = never (local)
    token_id: str | None = None  # the token's ``jti`` when it has one


LOCAL_IDENTITY = Identity(
    kind="local",
    principal_id="local",
    issuer="local",
    subject="local",
    # Single-player mode grants the platform-admin role as a fact; the policies decide
    # what that role may do.
    global_roles=frozenset({"platform_admin"}),
)


def parse_global_roles(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    """Global roles from ``claims[claim]`` (a list of strings or a space-separated string).

    Values other than ``platform_admin`` and ``auditor`` are ignored. A claim of any other
    shape is rejected rather than silently read as "no roles", so a misconfigured IdP is
    noticed.
    """
    value = claims.get(claim)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        items: list[str] = value.split()
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        raise AuthenticationError(
            f"token claim {claim!r} must be a list of strings or a space-separated string"
        )
    return GLOBAL_ROLE_VALUES.intersection(items)


def x509_identity(subject: str) -> Identity:
    """The user identified by a verified client certificate's subject (RFC 4514 form).

    Whitespace is written as the RFC 4514 escape ``\\20`` so the principal id is one token
    (member records refuse ids with spaces). No global roles: it gets access through
    memberships like any other user.
    """
    if not subject:
        raise AuthenticationError("the client certificate has an empty subject")
    escaped = "".join(f"\\{ord(c):02x}" if c.isspace() else c for c in subject)
    principal = f"{X509_ISSUER}:{escaped}"
    return Identity(kind="user", principal_id=principal, issuer=X509_ISSUER, subject=escaped)
