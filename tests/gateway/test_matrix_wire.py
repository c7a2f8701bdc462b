"""SPEC §4 through the wire: every role x action x (own / other) cell, driven by tests/authz/spec_matrix.yaml.

One world per store backend: namespaces ``team-own`` and ``team-other``, each with a
sandbox ``box`` (provider ``creds`` attached), a second sandbox ``box-2`` and a service
account ``robot``. Each role's principal holds its role in ``team-own`` only (global
roles come from the OIDC claim). Destructive actions act on objects a platform admin
creates for that one cell, so cells do not disturb each other. A cell is "allowed" when
the RPC returns OK (ListNamespaces: when the namespace is in the answer); "refused" is
PERMISSION_DENIED or NOT_FOUND, and NOT_FOUND whenever the caller cannot see the target's
namespace (no global role, other namespace).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from openshell_server.api import resources_pb2 as pb
from tests.gateway.harness import GatewayUnderTest, Stub, api, call_status

SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "authz" / "spec_matrix.yaml").read_text())
COLUMNS: list[str] = SPEC["columns"]
EXPECTED: dict[tuple[str, str], str] = {
    (role, action): cell
    for row in SPEC["rows"]
    for action in row["actions"]
    for role, cell in zip(COLUMNS, row["cells"], strict=True)
}
ACTIONS = list(dict.fromkeys(action for _, action in EXPECTED))
CEILING = pb.Limits(max_sandboxes=1000, max_gpus=100, max_sandbox_lifetime_seconds=10**6)
LOWER = pb.Limits(max_sandboxes=500, max_gpus=50, max_sandbox_lifetime_seconds=10**5)  # below the ceiling
REFUSED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)
NAMESPACE_ROLES = {"namespace_admin": "namespace_admin", "namespace_auditor": "auditor", "user": "user"}
GLOBAL_ROLES = {"platform_admin": ("platform_admin",), "auditor": ("auditor",)}


@dataclass
class World:
    gw: GatewayUnderTest
    admin: Stub
    callers: dict[str, Stub]
    principal_ids: dict[str, str]
    sandbox_ids: dict[tuple[str, str], str]  # (namespace, sandbox name) -> id
    counter: itertools.count

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"


def _populate(admin: Stub, ns: str) -> dict[tuple[str, str], str]:
    admin.CreateNamespace(api.CreateNamespaceRequest(name=ns, ceiling=CEILING))
    admin.CreateProvider(api.CreateProviderRequest(namespace=ns, name="creds", credentials={"TOKEN": f"secret-{ns}"}))
    admin.CreateServiceAccount(api.CreateServiceAccountRequest(namespace=ns, name="robot"))
    ids = {}
    for name in ("box", "box-2"):
        sbx = admin.CreateSandbox(api.CreateSandboxRequest(namespace=ns, name=name, providers=["creds"])).sandbox
        ids[(ns, name)] = sbx.meta.id
    return ids


@pytest.fixture(scope="module")
def world(module_gw: GatewayUnderTest) -> World:
    gw = module_gw
    admin = gw.as_user("matrix-root", roles=("platform_admin",))
    ids = _populate(admin, "team-own") | _populate(admin, "team-other")
    callers: dict[str, Stub] = {}
    principal_ids: dict[str, str] = {}
    for role, roles in GLOBAL_ROLES.items():
        callers[role] = gw.as_user(f"m-{role}", roles=roles)
        principal_ids[role] = gw.principal_id(f"m-{role}")
    for role, ns_role in NAMESPACE_ROLES.items():
        pid = gw.principal_id(f"m-{role}")
        admin.AddMember(api.AddMemberRequest(namespace="team-own", principal=pid, role=ns_role))
        callers[role], principal_ids[role] = gw.as_user(f"m-{role}"), pid
    admin.CreateServiceAccount(api.CreateServiceAccountRequest(namespace="team-own", name="ci"))
    sa_token = admin.IssueServiceAccountToken(
        api.IssueServiceAccountTokenRequest(namespace="team-own", name="ci")
    ).token
    callers["service_account"] = gw.client(sa_token)
    sup_token, _ = gw.gateway.minter.mint_supervisor(ids[("team-own", "box")], "team-own", 3600)
    callers["supervisor"] = gw.client(sup_token)
    return World(gw, admin, callers, principal_ids, ids, itertools.count())


# ---------------------------------------------------------------------- one request per action
# Each builder returns (rpc name, request); it may first create the cell's own objects as the admin.
Builder = Callable[[World, str, str, str], tuple[str, Any]]


def _fresh_namespace(w: World, role: str, scope: str) -> str:
    """An empty namespace where ``role`` holds its membership when scope is own."""
    name = w.fresh("dn")
    w.admin.CreateNamespace(api.CreateNamespaceRequest(name=name, ceiling=CEILING))
    if scope == "own" and role in NAMESPACE_ROLES:
        w.admin.AddMember(
            api.AddMemberRequest(namespace=name, principal=w.principal_ids[role], role=NAMESPACE_ROLES[role])
        )
    return name


def _delete_namespace(w: World, role: str, scope: str, ns: str) -> tuple[str, Any]:
    if role in ("service_account", "supervisor"):
        return "DeleteNamespace", api.DeleteNamespaceRequest(name=ns)  # its own namespace: must be refused
    return "DeleteNamespace", api.DeleteNamespaceRequest(name=_fresh_namespace(w, role, scope))


def _remove_member(w: World, role: str, scope: str, ns: str) -> tuple[str, Any]:
    pid = w.gw.principal_id(w.fresh("rm"))
    w.admin.AddMember(api.AddMemberRequest(namespace=ns, principal=pid, role="user"))
    return "RemoveMember", api.RemoveMemberRequest(namespace=ns, principal=pid)


def _delete_sa(w: World, role: str, scope: str, ns: str) -> tuple[str, Any]:
    name = w.fresh("dsa")
    w.admin.CreateServiceAccount(api.CreateServiceAccountRequest(namespace=ns, name=name))
    return "DeleteServiceAccount", api.DeleteServiceAccountRequest(namespace=ns, name=name)


def _delete_sandbox(w: World, role: str, scope: str, ns: str) -> tuple[str, Any]:
    name = w.fresh("dsb")
    w.admin.CreateSandbox(api.CreateSandboxRequest(namespace=ns, name=name))
    return "DeleteSandbox", api.DeleteSandboxRequest(namespace=ns, name=name)


def _delete_provider(w: World, role: str, scope: str, ns: str) -> tuple[str, Any]:
    name = w.fresh("dp")
    w.admin.CreateProvider(api.CreateProviderRequest(namespace=ns, name=name))
    return "DeleteProvider", api.DeleteProviderRequest(namespace=ns, name=name)


def _attach(w: World, role: str, scope: str, ns: str) -> tuple[str, Any]:
    name = w.fresh("ap")
    w.admin.CreateProvider(api.CreateProviderRequest(namespace=ns, name=name))
    return "AttachProvider", api.AttachProviderRequest(namespace=ns, sandbox="box-2", provider=name)


def _detach(w: World, role: str, scope: str, ns: str) -> tuple[str, Any]:
    name = w.fresh("dt")
    w.admin.CreateProvider(api.CreateProviderRequest(namespace=ns, name=name))
    w.admin.AttachProvider(api.AttachProviderRequest(namespace=ns, sandbox="box-2", provider=name))
    return "DetachProvider", api.DetachProviderRequest(namespace=ns, sandbox="box-2", provider=name)


def _sandbox_of(w: World, role: str, scope: str, ns: str) -> str:
    """The sandbox a sandbox-targeted cell acts on (for the supervisor: its own or a sibling)."""
    if role == "supervisor":
        return "box" if scope == "own" else "box-2"
    return "box"


def _supervisor_rpc(rpc: str, request_type: Any, **extra: Any) -> Builder:
    def build(w: World, role: str, scope: str, ns: str) -> tuple[str, Any]:
        sandbox_ns = "team-own" if role == "supervisor" else ns
        sid = w.sandbox_ids[(sandbox_ns, _sandbox_of(w, role, scope, ns))]
        return rpc, request_type(sandbox_id=sid, **extra)

    return build


def _sandbox_rpc(rpc: str, request_type: Any, **extra: Any) -> Builder:
    def build(w: World, role: str, scope: str, ns: str) -> tuple[str, Any]:
        if role == "supervisor":
            ns = "team-own"
        return rpc, request_type(namespace=ns, name=_sandbox_of(w, role, scope, ns), **extra)

    return build


BUILDERS: dict[str, Builder] = {
    "CreateNamespace": lambda w, r, s, ns: ("CreateNamespace", api.CreateNamespaceRequest(name=w.fresh("cn"))),
    "DeleteNamespace": _delete_namespace,
    "UpdateNamespace": lambda w, r, s, ns: ("UpdateNamespace", api.UpdateNamespaceRequest(name=ns, quota=LOWER)),
    "GetNamespace": lambda w, r, s, ns: ("GetNamespace", api.GetNamespaceRequest(name=ns)),
    "ListNamespaces": lambda w, r, s, ns: ("ListNamespaces", api.ListNamespacesRequest()),
    "AddMember": lambda w, r, s, ns: (
        "AddMember",
        api.AddMemberRequest(namespace=ns, principal=w.gw.principal_id(w.fresh("am")), role="user"),
    ),
    "RemoveMember": _remove_member,
    "ListMembers": lambda w, r, s, ns: ("ListMembers", api.ListMembersRequest(namespace=ns)),
    "CreateServiceAccount": lambda w, r, s, ns: (
        "CreateServiceAccount",
        api.CreateServiceAccountRequest(namespace=ns, name=w.fresh("csa")),
    ),
    "DeleteServiceAccount": _delete_sa,
    "IssueServiceAccountToken": lambda w, r, s, ns: (
        "IssueServiceAccountToken",
        api.IssueServiceAccountTokenRequest(namespace=ns, name="robot"),
    ),
    "ListServiceAccounts": lambda w, r, s, ns: ("ListServiceAccounts", api.ListServiceAccountsRequest(namespace=ns)),
    "CreateSandbox": lambda w, r, s, ns: ("CreateSandbox", api.CreateSandboxRequest(namespace=ns, name=w.fresh("csb"))),
    "DeleteSandbox": _delete_sandbox,
    "GetSandbox": _sandbox_rpc("GetSandbox", api.GetSandboxRequest),
    "ListSandboxes": lambda w, r, s, ns: ("ListSandboxes", api.ListSandboxesRequest(namespace=ns)),
    "ExecSandbox": _sandbox_rpc("ExecSandbox", api.ExecSandboxRequest, argv=["true"]),
    "GetSandboxLogs": _sandbox_rpc("GetSandboxLogs", api.GetSandboxLogsRequest),
    "GetSandboxPolicy": _sandbox_rpc("GetSandboxPolicy", api.GetSandboxPolicyRequest),
    "CreateProvider": lambda w, r, s, ns: (
        "CreateProvider",
        api.CreateProviderRequest(namespace=ns, name=w.fresh("cp")),
    ),
    "UpdateProvider": lambda w, r, s, ns: (
        "UpdateProvider",
        api.UpdateProviderRequest(namespace=ns, name="creds", labels=pb.Labels(items={"k": "v"})),
    ),
    "DeleteProvider": _delete_provider,
    "GetProvider": lambda w, r, s, ns: ("GetProvider", api.GetProviderRequest(namespace=ns, name="creds")),
    "ListProviders": lambda w, r, s, ns: ("ListProviders", api.ListProvidersRequest(namespace=ns)),
    "AttachProvider": _attach,
    "DetachProvider": _detach,
    "GetGatewayConfig": lambda w, r, s, ns: ("GetGatewayConfig", api.GetGatewayConfigRequest()),
    "UpdateGatewayConfig": lambda w, r, s, ns: (
        "UpdateGatewayConfig",
        api.UpdateGatewayConfigRequest(config=pb.GatewayConfig()),
    ),
    "ListAuditEvents": lambda w, r, s, ns: ("ListAuditEvents", api.ListAuditEventsRequest(namespace=ns)),
    "GetSandboxConfig": _supervisor_rpc("GetSandboxConfig", api.GetSandboxConfigRequest),
    "GetSandboxProviderEnvironment": _supervisor_rpc(
        "GetSandboxProviderEnvironment", api.GetSandboxProviderEnvironmentRequest
    ),
    "PushSandboxLogs": _supervisor_rpc("PushSandboxLogs", api.PushSandboxLogsRequest, lines=[pb.LogLine(text="x")]),
    "RefreshSandboxToken": _supervisor_rpc("RefreshSandboxToken", api.RefreshSandboxTokenRequest),
    "WhoAmI": lambda w, r, s, ns: ("WhoAmI", api.WhoAmIRequest()),
    "CheckAccess": lambda w, r, s, ns: ("CheckAccess", api.CheckAccessRequest(action="WhoAmI", kind="gateway")),
}
GATEWAY_TARGETS = {
    "CreateNamespace",
    "ListNamespaces",
    "GetGatewayConfig",
    "UpdateGatewayConfig",
    "WhoAmI",
    "CheckAccess",
}


def test_every_spec_action_has_a_wire_request() -> None:
    assert set(ACTIONS) == set(BUILDERS)
    assert set(COLUMNS) == set(GLOBAL_ROLES) | set(NAMESPACE_ROLES) | {"service_account", "supervisor"}


def _cell_result(w: World, role: str, action: str, scope: str) -> tuple[bool, grpc.StatusCode, str]:
    ns = "team-own" if scope == "own" else "team-other"
    rpc, request = BUILDERS[action](w, role, scope, ns)
    code, details, result = call_status(getattr(w.callers[role], rpc), request)
    if action == "ListNamespaces" and code == grpc.StatusCode.OK:
        # The RPC always answers an authenticated human; the cell is whether the namespace is listed.
        return ns in {n.meta.name for n in result.namespaces}, code, details
    return code == grpc.StatusCode.OK, code, details


@pytest.mark.parametrize("role", COLUMNS)
def test_matrix_over_the_wire(world: World, role: str) -> None:
    disagreements = []
    for action in ACTIONS:
        cell = EXPECTED[(role, action)]
        for scope in ("own", "other"):
            want = cell == "all" or (cell == "own" and scope == "own")
            got, code, details = _cell_result(world, role, action, scope)
            if got != want:
                disagreements.append(
                    f"{action}/{scope}: spec {'allows' if want else 'refuses'}, wire {code.name} {details}"
                )
                continue
            if got or code == grpc.StatusCode.OK:
                continue
            if code not in REFUSED:
                disagreements.append(f"{action}/{scope}: refused with {code.name} ({details})")
            hidden = scope == "other" and role not in GLOBAL_ROLES and action not in GATEWAY_TARGETS
            if role == "supervisor" and action not in GATEWAY_TARGETS:
                hidden = True  # a supervisor sees no namespace at all
            if hidden and code != grpc.StatusCode.NOT_FOUND:
                disagreements.append(f"{action}/{scope}: a hidden target must be NOT_FOUND, got {code.name}")
    assert not disagreements, f"{role}:\n" + "\n".join(disagreements)
