"""A scripted session against one real gateway: every mutating RPC of SPEC §4 once, plus denials.

Each step records the audit events its call added, so tests can check "exactly
one event per call, with the right actor and namespace" and then read the log
back through ListAuditEvents, ``openshell-authz audit verify`` and ``diff``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from openshell_server.api import resources_pb2 as pb
from openshell_server.authn import MINTED_ISSUER
from tests.audit_gateway._log import read_events
from tests.gateway.harness import GatewayUnderTest, api, call_status, start_gateway

__all__ = ["Step", "World", "world"]


@dataclass(frozen=True)
class Step:
    """One call of the script: what it was, who made it, and the events it added to the log."""

    rpc: str
    actor: str
    kind: str
    issuer: str
    namespace: str
    code: grpc.StatusCode
    events: tuple[dict[str, Any], ...]
    on_behalf_of: str = ""


@dataclass
class World:
    gw: GatewayUnderTest
    steps: list[Step] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def audit_file(self) -> Path:
        return self.gw.data_dir / "audit" / "audit.jsonl"

    def pid(self, sub: str) -> str:
        return self.gw.principal_id(sub)

    def user(self, sub: str, *roles: str) -> Any:
        return self.gw.as_user(sub, roles=roles)

    def do(
        self, stub: Any, rpc: str, request: Any, *, actor: str, kind: str = "user", issuer: str = "",
        namespace: str = "", on_behalf_of: str = "", expect: grpc.StatusCode = grpc.StatusCode.OK,
    ) -> Any:  # fmt: skip
        before = len(read_events(self.gw.data_dir))
        code, message, result = call_status(getattr(stub, rpc), request)
        assert code == expect, f"{rpc} by {actor}: {code.name} {message}"
        events = tuple(read_events(self.gw.data_dir)[before:])
        issuer = issuer or (self.gw.issuer.issuer if kind == "user" and self.gw.issuer else MINTED_ISSUER)
        self.steps.append(Step(rpc, actor, kind, issuer, namespace, code, events, on_behalf_of))
        return result


MUTATING_RPCS = frozenset({
    "CreateNamespace", "UpdateNamespace", "DeleteNamespace", "AddMember", "RemoveMember",
    "CreateServiceAccount", "DeleteServiceAccount", "IssueServiceAccountToken",
    "CreateSandbox", "DeleteSandbox", "ExecSandbox",
    "CreateProvider", "UpdateProvider", "DeleteProvider", "AttachProvider", "DetachProvider",
    "UpdateGatewayConfig", "GetSandboxProviderEnvironment", "RefreshSandboxToken",
})  # fmt: skip


def _script(w: World) -> None:
    ok_denied = grpc.StatusCode.PERMISSION_DENIED
    root, nadia, uma = w.user("root", "platform_admin"), w.user("nadia"), w.user("uma")
    r, n, u = w.pid("root"), w.pid("nadia"), w.pid("uma")
    cap = pb.Limits(max_sandboxes=10)
    w.do(
        root,
        "CreateNamespace",
        api.CreateNamespaceRequest(name="team", quota=cap, ceiling=cap),
        actor=r,
        namespace="team",
    )
    w.do(root, "CreateNamespace", api.CreateNamespaceRequest(name="other"), actor=r, namespace="other")
    w.do(root, "CreateNamespace", api.CreateNamespaceRequest(name="gone"), actor=r, namespace="gone")
    w.do(root, "DeleteNamespace", api.DeleteNamespaceRequest(name="gone"), actor=r, namespace="gone")
    w.do(root, "UpdateGatewayConfig", api.UpdateGatewayConfigRequest(
        config=pb.GatewayConfig(default_sandbox_policy=pb.SandboxPolicy(deny_endpoints=["metadata.internal"]))),
        actor=r)  # fmt: skip
    w.do(root, "AddMember", api.AddMemberRequest(namespace="team", principal=n, role="namespace_admin"),
         actor=r, namespace="team")  # fmt: skip
    for who, role in (("uma", "user"), ("aldo", "auditor"), ("temp", "user")):
        w.do(nadia, "AddMember", api.AddMemberRequest(namespace="team", principal=w.pid(who), role=role),
             actor=n, namespace="team")  # fmt: skip
    w.do(
        nadia,
        "RemoveMember",
        api.RemoveMemberRequest(namespace="team", principal=w.pid("temp")),
        actor=n,
        namespace="team",
    )
    w.do(nadia, "UpdateNamespace", api.UpdateNamespaceRequest(name="team", quota=pb.Limits(max_sandboxes=8)),
         actor=n, namespace="team")  # fmt: skip
    w.do(
        nadia,
        "CreateServiceAccount",
        api.CreateServiceAccountRequest(namespace="team", name="ci"),
        actor=n,
        namespace="team",
    )
    sa_token = w.do(nadia, "IssueServiceAccountToken", api.IssueServiceAccountTokenRequest(namespace="team", name="ci"),
                    actor=n, namespace="team").token  # fmt: skip
    w.do(nadia, "CreateProvider", api.CreateProviderRequest(
        namespace="team", name="git", type="github", credentials={"GH_TOKEN": "s3cret"},
        profile=pb.ProviderProfile(endpoints=["github.com"])), actor=n, namespace="team")  # fmt: skip
    update = api.UpdateProviderRequest(namespace="team", name="git", credentials={"GH_TOKEN": "n3w"})
    w.do(nadia, "UpdateProvider", update, actor=n, namespace="team")
    box = w.do(uma, "CreateSandbox", api.CreateSandboxRequest(namespace="team", name="box"), actor=u, namespace="team")
    w.do(uma, "AttachProvider", api.AttachProviderRequest(namespace="team", sandbox="box", provider="git"),
         actor=u, namespace="team")  # fmt: skip
    w.do(
        uma,
        "ExecSandbox",
        api.ExecSandboxRequest(namespace="team", name="box", argv=["true"]),
        actor=u,
        namespace="team",
    )

    sup_token, _ = w.gw.gateway.minter.mint_supervisor(box.sandbox.meta.id, "team", 600)
    sup, sup_id = w.gw.client(sup_token), f"sandbox:{box.sandbox.meta.id}"
    for rpc, req in (("GetSandboxProviderEnvironment", api.GetSandboxProviderEnvironmentRequest),
                     ("RefreshSandboxToken", api.RefreshSandboxTokenRequest)):  # fmt: skip
        w.do(sup, rpc, req(sandbox_id=box.sandbox.meta.id), actor=sup_id, kind="supervisor", namespace="team",
             on_behalf_of=u)  # fmt: skip

    ci, ci_id = w.gw.client(sa_token), "system:serviceaccount:team:ci"
    w.do(ci, "CreateSandbox", api.CreateSandboxRequest(namespace="team", name="ci-box"), actor=ci_id,
         kind="service_account", namespace="team")  # fmt: skip
    w.do(ci, "DeleteSandbox", api.DeleteSandboxRequest(namespace="team", name="ci-box"), actor=ci_id,
         kind="service_account", namespace="team")  # fmt: skip
    w.do(uma, "DetachProvider", api.DetachProviderRequest(namespace="team", sandbox="box", provider="git"),
         actor=u, namespace="team")  # fmt: skip
    w.do(nadia, "DeleteProvider", api.DeleteProviderRequest(namespace="team", name="git"), actor=n, namespace="team")
    w.do(
        nadia,
        "DeleteServiceAccount",
        api.DeleteServiceAccountRequest(namespace="team", name="ci"),
        actor=n,
        namespace="team",
    )
    w.do(
        root, "CreateSandbox", api.CreateSandboxRequest(namespace="other", name="elsewhere"), actor=r, namespace="other"
    )

    # Reads write nothing; denials write one event each.
    w.do(uma, "GetSandbox", api.GetSandboxRequest(namespace="team", name="box"), actor=u, namespace="team")
    w.do(uma, "CreateProvider", api.CreateProviderRequest(namespace="team", name="mine", type="x"),
         actor=u, namespace="team", expect=ok_denied)  # fmt: skip
    w.do(nadia, "UpdateNamespace", api.UpdateNamespaceRequest(name="team", quota=pb.Limits(max_sandboxes=50)),
         actor=n, namespace="team", expect=ok_denied)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The scripted session on one SQLite gateway (the store backend does not change what is audited)."""
    with start_gateway(tmp_path_factory.mktemp("audit") / "data") as gw:
        w = World(gw)
        _script(w)
        yield w


def steps_for(w: World, predicate: Callable[[Step], bool]) -> list[Step]:
    return [s for s in w.steps if predicate(s)]
