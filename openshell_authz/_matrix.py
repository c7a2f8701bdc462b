"""The access matrix: what the loaded policies really allow, role x action x scope.

Computed by evaluating the policies (one batch) over a small fixed world, so a
policy edit changes it. Scopes: ``own`` targets the namespace where the role is
held (for the supervisor: its own sandbox); ``other`` targets a namespace where
the principal holds nothing (for the supervisor: another sandbox of the same
namespace). Global roles hold no membership, so for them the two differ only in
which namespace is asked about.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from openshell_authz.authorizer import LIST_ACTIONS, Authorizer, Request
from openshell_authz.context import AttachContext, Context, ListContext, MemberContext, UpdateNamespaceContext
from openshell_authz.models import (
    Gateway,
    GlobalRole,
    Membership,
    Namespace,
    NamespaceRole,
    Principal,
    Provider,
    Quota,
    Resource,
    Sandbox,
    ServiceAccount,
    ServiceAccountPrincipal,
    SupervisorPrincipal,
    UserPrincipal,
)

__all__ = ["MATRIX_ACTIONS", "ROLES", "SCOPES", "MatrixCell", "compute_matrix", "format_matrix", "matrix_json"]

ROLES = (
    "platform_admin",
    "auditor",
    "namespace_admin",
    "namespace_auditor",
    "user",
    "service_account",
    "supervisor",
)
SCOPES = ("own", "other")

# Action -> kind of target, in SPEC §4 order.
_TARGETS: dict[str, str] = {
    "CreateNamespace": "gateway",
    "DeleteNamespace": "namespace",
    "UpdateNamespace": "namespace",
    "GetNamespace": "namespace",
    "ListNamespaces": "namespace",
    "AddMember": "namespace",
    "RemoveMember": "namespace",
    "ListMembers": "namespace",
    "CreateServiceAccount": "namespace",
    "DeleteServiceAccount": "service_account",
    "IssueServiceAccountToken": "service_account",
    "ListServiceAccounts": "namespace",
    "CreateSandbox": "namespace",
    "DeleteSandbox": "sandbox",
    "GetSandbox": "sandbox",
    "ListSandboxes": "namespace",
    "ExecSandbox": "sandbox",
    "GetSandboxLogs": "sandbox",
    "GetSandboxPolicy": "sandbox",
    "CreateProvider": "namespace",
    "UpdateProvider": "provider",
    "DeleteProvider": "provider",
    "GetProvider": "provider",
    "ListProviders": "namespace",
    "AttachProvider": "sandbox",
    "DetachProvider": "sandbox",
    "GetGatewayConfig": "gateway",
    "UpdateGatewayConfig": "gateway",
    "ListAuditEvents": "namespace",
    "GetSandboxConfig": "sandbox",
    "GetSandboxProviderEnvironment": "sandbox",
    "PushSandboxLogs": "sandbox",
    "RefreshSandboxToken": "sandbox",
    "WhoAmI": "gateway",
    "CheckAccess": "gateway",
}
MATRIX_ACTIONS: tuple[str, ...] = tuple(_TARGETS)


@dataclass(frozen=True, slots=True)
class MatrixCell:
    role: str
    action: str
    scope: str
    allowed: bool


_CEILING = Quota(max_sandboxes=10, max_gpus=4, max_sandbox_lifetime_seconds=86400)
# An UpdateNamespace by the matrix asks for limits below the ceiling (the §4 cell
# "quota below ceiling only"); the policy tests cover raising it and the ceiling itself.
_LOWER_LIMITS = Quota(max_sandboxes=5, max_gpus=2, max_sandbox_lifetime_seconds=3600)


@dataclass(frozen=True)
class _Place:
    """The objects of one scope: a namespace and one of each resource in it."""

    namespace: Namespace
    sandbox: Sandbox
    provider: Provider
    service_account: ServiceAccount


def _place(ns_id: str, name: str, suffix: str = "") -> _Place:
    ns = Namespace(id=ns_id, name=name, ceiling=_CEILING)
    provider = Provider(id=f"prov-{name}{suffix}", name=f"creds{suffix}", namespace=ns)
    return _Place(
        ns,
        Sandbox(id=f"sb-{name}{suffix}", name=f"box{suffix}", namespace=ns, provider_ids=frozenset({provider.id})),
        provider,
        ServiceAccount(id=f"sa-{name}{suffix}", name=f"robot{suffix}", namespace=ns),
    )


_OWN = _place("ns-own", "team-own")
_OTHER = _place("ns-other", "team-other")
_OWN_SIBLING = _place("ns-own", "team-own", "-2")  # the supervisor's "other": same namespace


def _user(key: str, *, global_role: GlobalRole | None = None, role: NamespaceRole | None = None) -> UserPrincipal:
    return UserPrincipal(
        id=f"https://issuer.test#{key}",
        issuer="https://issuer.test",
        subject=key,
        global_roles=frozenset({global_role} if global_role else ()),
        memberships=(Membership(namespace_id=_OWN.namespace.id, role=role),) if role else (),
    )


_PRINCIPALS: dict[str, Principal] = {
    "platform_admin": _user("pat", global_role=GlobalRole.PLATFORM_ADMIN),
    "auditor": _user("gail", global_role=GlobalRole.AUDITOR),
    "namespace_admin": _user("nadia", role=NamespaceRole.NAMESPACE_ADMIN),
    "namespace_auditor": _user("aud", role=NamespaceRole.AUDITOR),
    "user": _user("uma", role=NamespaceRole.USER),
    "service_account": ServiceAccountPrincipal(
        id="sa-principal", name="ci", namespace_id=_OWN.namespace.id, namespace_name=_OWN.namespace.name
    ),
    "supervisor": SupervisorPrincipal(sandbox=_OWN.sandbox),
}


# What "other" means per column (SPEC §4): for the supervisor, another sandbox of the
# same namespace; for everyone else, a namespace the principal holds nothing in.
_OTHER_PLACE = {"supervisor": _OWN_SIBLING}


def _request(role: str, action: str, scope: str) -> Request:
    other = _OTHER_PLACE.get(role, _OTHER)
    place = _OWN if scope == "own" else other
    kind = _TARGETS.get(action, "gateway")
    resource: Resource = {
        "gateway": Gateway(),
        "namespace": place.namespace,
        "sandbox": place.sandbox,
        "provider": place.provider,
        "service_account": place.service_account,
    }[kind]
    context: Context | None = None
    if action in LIST_ACTIONS:
        context = ListContext(all_namespaces=False)
    elif action in ("AddMember", "RemoveMember"):
        # §4's member cells are about user/auditor memberships.
        context = MemberContext(role=NamespaceRole.USER, previous_role=NamespaceRole.USER
                                if action == "RemoveMember" else "")
    elif action == "UpdateNamespace":
        context = UpdateNamespaceContext(limits=_LOWER_LIMITS)
    elif action in ("AttachProvider", "DetachProvider"):
        context = AttachContext(provider=place.provider)
    return Request(_PRINCIPALS[role], action, resource, context)


def matrix_actions(authorizer: Authorizer) -> list[str]:
    """§4's actions the policy set's schema declares, then any other schema action."""
    known = [a for a in MATRIX_ACTIONS if a in authorizer.actions]
    return known + sorted(authorizer.actions - set(MATRIX_ACTIONS))


def compute_matrix(authorizer: Authorizer) -> list[MatrixCell]:
    """Every role x action x scope cell, decided by ``authorizer`` in one batch."""
    keys = [(r, a, s) for a in matrix_actions(authorizer) for r in ROLES for s in SCOPES]
    responses = authorizer.check_batch([_request(r, a, s) for r, a, s in keys])
    return [MatrixCell(r, a, s, resp.allowed) for (r, a, s), resp in zip(keys, responses, strict=True)]


def matrix_json(cells: Sequence[MatrixCell]) -> str:
    return json.dumps([asdict(c) for c in cells], indent=1)


def _cell_text(own: bool, other: bool) -> str:
    if own and other:
        return "all"
    if own:
        return "own"
    return "OTHER-ONLY" if other else "-"


def format_matrix(cells: Sequence[MatrixCell]) -> str:
    """A text table: rows are actions, columns roles; cells all / own / -."""
    table = {(c.role, c.action, c.scope): c.allowed for c in cells}
    actions = list(dict.fromkeys(c.action for c in cells))
    width = max([len(a) for a in actions] + [6])
    col = max(len(r) for r in ROLES)
    lines = [" " * width + "  " + "  ".join(r.ljust(col) for r in ROLES)]
    for action in actions:
        row = [_cell_text(table[(r, action, "own")], table[(r, action, "other")]).ljust(col) for r in ROLES]
        lines.append(action.ljust(width) + "  " + "  ".join(row))
    lines.append("all = own and other namespace; own = only where the role is held "
                 "(supervisor: its own sandbox); - = never")
    return "\n".join(lines)
