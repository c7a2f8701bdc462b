"""A two-namespace world on a live gateway, shared by the hardening suites.

Namespaces ``alpha`` and ``beta`` each hold a sandbox ``box`` (with provider ``creds``
attached), a spare provider ``spare``, a service account ``robot``, a member
``<ns>-user`` and a namespace admin ``<ns>-admin``. ``gamma`` never exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openshell_server.api import methods
from tests.gateway.harness import GatewayUnderTest, Stub, api, sandbox_key

__all__ = ["NAMESPACES", "RPCS", "World", "build_world", "snapshot"]

NAMESPACES = ("alpha", "beta")
RPCS = sorted(m.rsplit("/", 1)[1] for m in methods())


@dataclass
class World:
    gw: GatewayUnderTest
    admin: Stub
    sandbox_ids: dict[str, str] = field(default_factory=dict)  # namespace -> id of its "box"

    def caller(self, who: str) -> Stub:
        """``root`` (platform admin), ``<ns>-user``, ``<ns>-admin``, ``<ns>-sa`` or ``<ns>-supervisor``."""
        if who == "root":
            return self.admin
        ns, _, role = who.partition("-")
        if role == "sa":
            token = self.admin.IssueServiceAccountToken(
                api.IssueServiceAccountTokenRequest(namespace=ns, name="robot")
            ).token
            return self.gw.client(token)
        if role == "supervisor":
            token, _ = self.gw.gateway.minter.mint_supervisor(self.sandbox_ids[ns], ns, 600)
            return self.gw.client(token)
        return self.gw.as_user(who)


def build_world(gw: GatewayUnderTest) -> World:
    admin = gw.as_user("hardening-root", roles=("platform_admin",))
    world = World(gw, admin)
    for ns in NAMESPACES:
        admin.CreateNamespace(api.CreateNamespaceRequest(name=ns))
        admin.CreateServiceAccount(api.CreateServiceAccountRequest(namespace=ns, name="robot"))
        for prov in ("creds", "spare"):
            admin.CreateProvider(api.CreateProviderRequest(
                namespace=ns, name=prov, credentials={f"{prov.upper()}_KEY": f"{ns}-{prov}-secret"}
            ))  # fmt: skip
        admin.AddMember(api.AddMemberRequest(namespace=ns, principal=gw.principal_id(f"{ns}-user"), role="user"))
        admin.AddMember(
            api.AddMemberRequest(namespace=ns, principal=gw.principal_id(f"{ns}-admin"), role="namespace_admin")
        )
        sbx = admin.CreateSandbox(api.CreateSandboxRequest(namespace=ns, name="box", providers=["creds"])).sandbox
        world.sandbox_ids[ns] = sbx.meta.id
    return world


def snapshot(admin: Stub) -> tuple[Any, ...]:
    """Everything a call could change, read by the platform admin (phases excluded: the driver moves them)."""
    every = {"all_namespaces": True}
    return (
        sorted(str(n) for n in admin.ListNamespaces(api.ListNamespacesRequest()).namespaces),
        sorted(sandbox_key(s) for s in admin.ListSandboxes(api.ListSandboxesRequest(**every)).sandboxes),
        sorted(str(p) for p in admin.ListProviders(api.ListProvidersRequest(**every)).providers),
        sorted(str(m) for m in admin.ListMembers(api.ListMembersRequest(**every)).members),
        sorted(str(s) for s in admin.ListServiceAccounts(api.ListServiceAccountsRequest(**every)).service_accounts),
        str(admin.GetGatewayConfig(api.GetGatewayConfigRequest()).config),
    )
