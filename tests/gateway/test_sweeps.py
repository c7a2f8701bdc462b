"""Sweeps over every RPC of the service with machine and outsider identities (issues 3 and 4).

(a) a user in no namespace, (b) a sandbox supervisor, (c) a service account against
another namespace, plus the service-account lifecycle: it works in its own namespace,
cannot manage members or become one, and its token dies with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from openshell_server.api import methods
from openshell_server.api import resources_pb2 as pb
from tests.gateway.harness import GatewayUnderTest, Stub, api, call_status, sandbox_key, start_gateway

REFUSED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)
RPCS = sorted(m.rsplit("/", 1)[1] for m in methods())


@dataclass
class World:
    gw: GatewayUnderTest
    admin: Stub
    sandbox_ids: dict[tuple[str, str], str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Namespaces ``alpha`` and ``beta``, each with sandboxes ``box``/``box-2``, providers, an account."""
    with start_gateway(tmp_path_factory.mktemp("sweep") / "data") as gw:
        admin = gw.as_user("sweep-root", roles=("platform_admin",))
        ids = {}
        for ns in ("alpha", "beta"):
            admin.CreateNamespace(api.CreateNamespaceRequest(name=ns))
            admin.CreateServiceAccount(api.CreateServiceAccountRequest(namespace=ns, name="robot"))
            for prov in ("creds", "spare"):
                admin.CreateProvider(api.CreateProviderRequest(
                    namespace=ns, name=prov, credentials={f"{prov.upper()}_KEY": f"{ns}-{prov}-secret"}
                ))  # fmt: skip
            admin.AddMember(api.AddMemberRequest(namespace=ns, principal=gw.principal_id(f"{ns}-member"), role="user"))
            for box, provs in (("box", ["creds"]), ("box-2", ["spare"])):
                sbx = admin.CreateSandbox(api.CreateSandboxRequest(namespace=ns, name=box, providers=provs)).sandbox
                ids[(ns, box)] = sbx.meta.id
        yield World(gw, admin, ids)


def plausible_request(rpc: str, ns: str, sandbox_id: str) -> Any:
    """A well-formed request for ``rpc`` naming real objects of namespace ``ns``."""
    builders: dict[str, Any] = {
        "CreateNamespace": lambda: api.CreateNamespaceRequest(name="sweep-new"),
        "GetNamespace": lambda: api.GetNamespaceRequest(name=ns),
        "ListNamespaces": lambda: api.ListNamespacesRequest(),
        "UpdateNamespace": lambda: api.UpdateNamespaceRequest(name=ns, labels=pb.Labels(items={"a": "b"})),
        "DeleteNamespace": lambda: api.DeleteNamespaceRequest(name=ns),
        "AddMember": lambda: api.AddMemberRequest(namespace=ns, principal="https://x#intruder", role="namespace_admin"),
        "RemoveMember": lambda: api.RemoveMemberRequest(namespace=ns, principal="https://x#nobody"),
        "ListMembers": lambda: api.ListMembersRequest(namespace=ns),
        "CreateServiceAccount": lambda: api.CreateServiceAccountRequest(namespace=ns, name="sweep-sa"),
        "DeleteServiceAccount": lambda: api.DeleteServiceAccountRequest(namespace=ns, name="robot"),
        "ListServiceAccounts": lambda: api.ListServiceAccountsRequest(namespace=ns),
        "IssueServiceAccountToken": lambda: api.IssueServiceAccountTokenRequest(namespace=ns, name="robot"),
        "CreateSandbox": lambda: api.CreateSandboxRequest(namespace=ns, name="sweep-box"),
        "GetSandbox": lambda: api.GetSandboxRequest(namespace=ns, name="box"),
        "ListSandboxes": lambda: api.ListSandboxesRequest(namespace=ns),
        "DeleteSandbox": lambda: api.DeleteSandboxRequest(namespace=ns, name="box"),
        "ExecSandbox": lambda: api.ExecSandboxRequest(namespace=ns, name="box", argv=["true"]),
        "GetSandboxLogs": lambda: api.GetSandboxLogsRequest(namespace=ns, name="box"),
        "GetSandboxPolicy": lambda: api.GetSandboxPolicyRequest(namespace=ns, name="box"),
        "CreateProvider": lambda: api.CreateProviderRequest(namespace=ns, name="sweep-prov"),
        "GetProvider": lambda: api.GetProviderRequest(namespace=ns, name="creds"),
        "ListProviders": lambda: api.ListProvidersRequest(namespace=ns),
        "UpdateProvider": lambda: api.UpdateProviderRequest(namespace=ns, name="creds", credentials={"X": "y"}),
        "DeleteProvider": lambda: api.DeleteProviderRequest(namespace=ns, name="spare"),
        "AttachProvider": lambda: api.AttachProviderRequest(namespace=ns, sandbox="box", provider="spare"),
        "DetachProvider": lambda: api.DetachProviderRequest(namespace=ns, sandbox="box", provider="creds"),
        "ListSandboxProviders": lambda: api.ListSandboxProvidersRequest(namespace=ns, sandbox="box"),
        "GetGatewayConfig": lambda: api.GetGatewayConfigRequest(),
        "UpdateGatewayConfig": lambda: api.UpdateGatewayConfigRequest(config=pb.GatewayConfig()),
        "ListAuditEvents": lambda: api.ListAuditEventsRequest(namespace=ns),
        "GetSandboxConfig": lambda: api.GetSandboxConfigRequest(sandbox_id=sandbox_id),
        "GetSandboxProviderEnvironment": lambda: api.GetSandboxProviderEnvironmentRequest(sandbox_id=sandbox_id),
        "PushSandboxLogs": lambda: api.PushSandboxLogsRequest(sandbox_id=sandbox_id, lines=[pb.LogLine(text="x")]),
        "RefreshSandboxToken": lambda: api.RefreshSandboxTokenRequest(sandbox_id=sandbox_id),
        "WhoAmI": lambda: api.WhoAmIRequest(),
        "CheckAccess": lambda: api.CheckAccessRequest(action="GetNamespace", kind="gateway"),
    }
    assert set(builders) == set(RPCS), "a new RPC needs a request in this sweep"
    return builders[rpc]()


def _state(w: World) -> tuple[Any, ...]:
    """Everything the sweeps could have changed, read by the platform admin."""
    a = w.admin
    out: list[Any] = [sorted(n.meta.name for n in a.ListNamespaces(api.ListNamespacesRequest()).namespaces)]
    for ns in ("alpha", "beta"):
        out.append(str(a.GetNamespace(api.GetNamespaceRequest(name=ns)).namespace))
        out.append(sorted(m.principal + m.role for m in a.ListMembers(api.ListMembersRequest(namespace=ns)).members))
        out.append(
            sorted(
                s.meta.name
                for s in a.ListServiceAccounts(api.ListServiceAccountsRequest(namespace=ns)).service_accounts
            )
        )
        out.append([sandbox_key(s) for s in a.ListSandboxes(api.ListSandboxesRequest(namespace=ns)).sandboxes])
        out.append([str(p) for p in a.ListProviders(api.ListProvidersRequest(namespace=ns)).providers])
    out.append(str(a.GetGatewayConfig(api.GetGatewayConfigRequest())))
    return tuple(out)


# ---------------------------------------------------------------------- (a) a user in no namespace
def test_outsider_is_refused_everything(world: World) -> None:
    outsider = world.gw.as_user("stranger")
    before = _state(world)
    succeeded = {}
    for rpc in RPCS:
        request = plausible_request(rpc, "alpha", world.sandbox_ids[("alpha", "box")])
        code, details, result = call_status(getattr(outsider, rpc), request)
        if code == grpc.StatusCode.OK:
            succeeded[rpc] = result
            continue
        assert code in REFUSED, f"{rpc}: {code.name} {details}"
        if rpc not in ("CreateNamespace", "UpdateGatewayConfig"):  # gateway targets are visible to everyone
            assert code == grpc.StatusCode.NOT_FOUND, f"{rpc} must not reveal that alpha exists: {code.name}"
    assert set(succeeded) == {"WhoAmI", "CheckAccess", "GetGatewayConfig", "ListNamespaces"}
    assert list(succeeded["ListNamespaces"].namespaces) == []
    who = succeeded["WhoAmI"]
    assert who.principal_id == world.gw.principal_id("stranger") and list(who.memberships) == []
    assert list(who.global_roles) == []
    assert succeeded["CheckAccess"].allowed is False
    assert "secret" not in str(succeeded["GetGatewayConfig"])
    # An outsider's lists across namespaces are refused, not silently empty.
    code, _, _ = call_status(outsider.ListSandboxes, api.ListSandboxesRequest(all_namespaces=True))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert _state(world) == before


# ---------------------------------------------------------------------- (b) the supervisor
SUPERVISOR_OWN = {"GetSandboxConfig", "GetSandboxProviderEnvironment", "PushSandboxLogs", "RefreshSandboxToken"}


def test_supervisor_reaches_only_its_own_sandbox(world: World) -> None:
    own_id = world.sandbox_ids[("alpha", "box")]
    token, _ = world.gw.gateway.minter.mint_supervisor(own_id, "alpha", 600)
    sup = world.gw.client(token)
    before = _state(world)
    allowed = set()
    for rpc in RPCS:
        code, details, _ = call_status(getattr(sup, rpc), plausible_request(rpc, "alpha", own_id))
        if code == grpc.StatusCode.OK:
            allowed.add(rpc)
        else:
            assert code in REFUSED, f"{rpc}: {code.name} {details}"
    # ListSandboxProviders is authorized as GetSandbox; it names its own sandbox here.
    assert allowed == SUPERVISOR_OWN | {"GetSandbox", "ListSandboxProviders"}

    # The same supervisor RPCs for another sandbox (same namespace, and another namespace): refused, NOT_FOUND.
    for other in (("alpha", "box-2"), ("beta", "box")):
        other_id = world.sandbox_ids[other]
        for rpc in sorted(SUPERVISOR_OWN):
            code, details, _ = call_status(getattr(sup, rpc), plausible_request(rpc, other[0], other_id))
            assert code == grpc.StatusCode.NOT_FOUND, f"{rpc} on {other}: {code.name} {details}"
        code, _, _ = call_status(sup.GetSandbox, api.GetSandboxRequest(namespace=other[0], name=other[1]))
        assert code == grpc.StatusCode.NOT_FOUND

    # Exactly the credentials of the providers attached to its sandbox.
    env = sup.GetSandboxProviderEnvironment(api.GetSandboxProviderEnvironmentRequest(sandbox_id=own_id)).environment
    assert dict(env) == {"CREDS_KEY": "alpha-creds-secret"}
    # PushSandboxLogs was accepted above; nothing else changed (token refresh writes no state).
    assert _state(world) == before


def test_supervisor_token_of_deleted_sandbox_is_unauthenticated(world: World) -> None:
    sbx = world.admin.CreateSandbox(api.CreateSandboxRequest(namespace="beta", name="short-lived")).sandbox
    token, _ = world.gw.gateway.minter.mint_supervisor(sbx.meta.id, "beta", 600)
    sup = world.gw.client(token)
    assert sup.GetSandboxConfig(api.GetSandboxConfigRequest(sandbox_id=sbx.meta.id)).name == "short-lived"
    world.admin.DeleteSandbox(api.DeleteSandboxRequest(namespace="beta", name="short-lived"))
    code, _, _ = call_status(sup.GetSandboxConfig, api.GetSandboxConfigRequest(sandbox_id=sbx.meta.id))
    assert code == grpc.StatusCode.UNAUTHENTICATED


# ---------------------------------------------------------------------- (c) service accounts
def _sa_token(admin: Stub, ns: str, name: str) -> str:
    return admin.IssueServiceAccountToken(api.IssueServiceAccountTokenRequest(namespace=ns, name=name)).token


def test_service_account_cannot_reach_another_namespace(world: World) -> None:
    sa = world.gw.client(_sa_token(world.admin, "beta", "robot"))
    before = _state(world)
    allowed = set()
    for rpc in RPCS:
        code, details, _ = call_status(
            getattr(sa, rpc), plausible_request(rpc, "alpha", world.sandbox_ids[("alpha", "box")])
        )
        if code == grpc.StatusCode.OK:
            allowed.add(rpc)
            continue
        assert code in REFUSED, f"{rpc}: {code.name} {details}"
        if rpc not in ("CreateNamespace", "UpdateGatewayConfig"):
            assert code == grpc.StatusCode.NOT_FOUND, f"{rpc} revealed alpha: {code.name}"
    assert allowed == {"WhoAmI", "CheckAccess", "GetGatewayConfig", "ListNamespaces"}
    names = [n.meta.name for n in sa.ListNamespaces(api.ListNamespacesRequest()).namespaces]
    assert names == ["beta"]
    for ns in ("alpha", ""):  # "" is default: not its namespace either
        code, _, _ = call_status(sa.ListSandboxes, api.ListSandboxesRequest(namespace=ns))
        assert code == grpc.StatusCode.NOT_FOUND
    code, _, _ = call_status(sa.ListSandboxes, api.ListSandboxesRequest(all_namespaces=True))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert _state(world) == before


def test_service_account_lifecycle(world: World) -> None:
    admin, gw = world.admin, world.gw
    admin.CreateNamespace(api.CreateNamespaceRequest(name="robots"))
    admin.AddMember(
        api.AddMemberRequest(namespace="robots", principal=gw.principal_id("rob-admin"), role="namespace_admin")
    )
    ns_admin = gw.as_user("rob-admin")
    created = ns_admin.CreateServiceAccount(api.CreateServiceAccountRequest(namespace="robots", name="deployer"))
    assert created.service_account.subject == "system:serviceaccount:robots:deployer"
    sa = gw.client(_sa_token(ns_admin, "robots", "deployer"))
    who = sa.WhoAmI(api.WhoAmIRequest())
    assert who.kind == "service_account" and who.principal_id == "system:serviceaccount:robots:deployer"

    # Works as a user in its own namespace: create and exec a sandbox.
    sbx = sa.CreateSandbox(api.CreateSandboxRequest(namespace="robots", name="job")).sandbox
    assert sbx.meta.created_by == "system:serviceaccount:robots:deployer"
    out = list(sa.ExecSandbox(api.ExecSandboxRequest(namespace="robots", name="job", argv=["echo", "ran"])))
    assert b"".join(o.stdout for o in out) == b"ran\n" and out[-1].exit_code == 0

    # Cannot manage or list members of its own namespace.
    for rpc, request in (
        ("AddMember", api.AddMemberRequest(namespace="robots", principal=gw.principal_id("x"), role="user")),
        ("ListMembers", api.ListMembersRequest(namespace="robots")),
        ("RemoveMember", api.RemoveMemberRequest(namespace="robots", principal=gw.principal_id("rob-admin"))),
    ):
        code, details, _ = call_status(getattr(sa, rpc), request)
        assert code == grpc.StatusCode.PERMISSION_DENIED, f"{rpc}: {code.name} {details}"

    # Can never be made a member (so never an admin), not even by a platform admin.
    for caller in (admin, ns_admin):
        for role in ("namespace_admin", "user"):
            code, _, _ = call_status(caller.AddMember, api.AddMemberRequest(
                namespace="robots", principal="system:serviceaccount:robots:deployer", role=role,
                member_kind="service_account",
            ))  # fmt: skip
            assert code == grpc.StatusCode.PERMISSION_DENIED
    # Naming it without member_kind is still recognized as a service account.
    code, _, _ = call_status(admin.AddMember, api.AddMemberRequest(
        namespace="robots", principal="system:serviceaccount:robots:deployer", role="namespace_admin"
    ))  # fmt: skip
    assert code == grpc.StatusCode.PERMISSION_DENIED
    members = admin.ListMembers(api.ListMembersRequest(namespace="robots")).members
    assert [m.principal for m in members] == [gw.principal_id("rob-admin")]

    # Deleting the account kills its token at once (the token is cached after the calls above).
    ns_admin.DeleteSandbox(api.DeleteSandboxRequest(namespace="robots", name="job"))
    ns_admin.DeleteServiceAccount(api.DeleteServiceAccountRequest(namespace="robots", name="deployer"))
    code, _, _ = call_status(sa.WhoAmI, api.WhoAmIRequest())
    assert code == grpc.StatusCode.UNAUTHENTICATED
    # A new account under the same name does not revive the old token.
    ns_admin.CreateServiceAccount(api.CreateServiceAccountRequest(namespace="robots", name="deployer"))
    code, _, _ = call_status(sa.ListSandboxes, api.ListSandboxesRequest(namespace="robots"))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_service_account_token_acts_as_it_in_local_mode(tmp_path: Path) -> None:
    with start_gateway(tmp_path / "data", oidc=False) as local:
        me = local.client()
        me.CreateNamespace(api.CreateNamespaceRequest(name="ops"))
        me.CreateServiceAccount(api.CreateServiceAccountRequest(namespace="ops", name="bot"))
        sa = local.client(_sa_token(me, "ops", "bot"))
        who = sa.WhoAmI(api.WhoAmIRequest())
        assert who.kind == "service_account" and list(who.global_roles) == []
        code, _, _ = call_status(sa.CreateNamespace, api.CreateNamespaceRequest(name="nope"))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        code, _, _ = call_status(sa.ListSandboxes, api.ListSandboxesRequest(namespace="default"))
        assert code == grpc.StatusCode.NOT_FOUND
        code, _, _ = call_status(local.client("not-a-token").WhoAmI, api.WhoAmIRequest())
        assert code == grpc.StatusCode.UNAUTHENTICATED
