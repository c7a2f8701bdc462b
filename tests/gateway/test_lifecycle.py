"""End to end through the wire: the issue's team-ml lifecycle, with real tokens."""

from __future__ import annotations

import grpc
import pytest

from tests.gateway.harness import GatewayUnderTest, api


def _code(exc: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return exc.value.code()


def test_team_lifecycle(gw: GatewayUnderTest) -> None:
    admin = gw.as_user("root-admin", roles=("platform_admin",))
    admin.CreateNamespace(api.CreateNamespaceRequest(name="team-ml"))
    admin.CreateNamespace(api.CreateNamespaceRequest(name="team-other"))
    admin.AddMember(
        api.AddMemberRequest(namespace="team-ml", principal=gw.principal_id("nadia"), role="namespace_admin")
    )

    nadia = gw.as_user("nadia")
    nadia.AddMember(api.AddMemberRequest(namespace="team-ml", principal=gw.principal_id("uma"), role="user"))
    nadia.CreateProvider(
        api.CreateProviderRequest(
            namespace="team-ml", name="claude", type="anthropic", credentials={"API_KEY": "s3cret"}
        )
    )
    admin.CreateSandbox(api.CreateSandboxRequest(namespace="team-other", name="secret-box"))

    uma = gw.as_user("uma")
    created = uma.CreateSandbox(api.CreateSandboxRequest(namespace="team-ml", name="work", providers=["claude"]))
    assert created.sandbox.meta.namespace == "team-ml"
    assert created.sandbox.meta.created_by == gw.principal_id("uma")
    assert list(created.sandbox.providers) == ["claude"]

    # Cannot see another namespace's sandbox: NOT_FOUND, exactly like a name that does not exist.
    with pytest.raises(grpc.RpcError) as hidden:
        uma.GetSandbox(api.GetSandboxRequest(namespace="team-other", name="secret-box"))
    with pytest.raises(grpc.RpcError) as missing:
        uma.GetSandbox(api.GetSandboxRequest(namespace="team-other", name="no-such-box"))
    assert _code(hidden) == _code(missing) == grpc.StatusCode.NOT_FOUND
    assert hidden.value.details().replace("secret-box", "X") == missing.value.details().replace("no-such-box", "X")
    listed = uma.ListSandboxes(api.ListSandboxesRequest(namespace="team-ml"))
    assert [s.meta.name for s in listed.sandboxes] == ["work"]
    with pytest.raises(grpc.RpcError) as all_ns:
        uma.ListSandboxes(api.ListSandboxesRequest(all_namespaces=True))
    assert _code(all_ns) == grpc.StatusCode.PERMISSION_DENIED

    # Cannot read the credential: no RPC returns it, and the supervisor RPC is refused.
    prov = uma.GetProvider(api.GetProviderRequest(namespace="team-ml", name="claude"))
    assert list(prov.provider.credential_keys) == ["API_KEY"]
    assert "s3cret" not in str(prov)
    with pytest.raises(grpc.RpcError) as env:
        uma.GetSandboxProviderEnvironment(api.GetSandboxProviderEnvironmentRequest(sandbox_id=created.sandbox.meta.id))
    assert _code(env) in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)

    # Cannot promote themselves.
    with pytest.raises(grpc.RpcError) as promote:
        uma.AddMember(
            api.AddMemberRequest(namespace="team-ml", principal=gw.principal_id("uma"), role="namespace_admin")
        )
    assert _code(promote) == grpc.StatusCode.PERMISSION_DENIED
    # ...and the namespace admin cannot make anyone a namespace admin either.
    with pytest.raises(grpc.RpcError) as na_promote:
        nadia.AddMember(
            api.AddMemberRequest(namespace="team-ml", principal=gw.principal_id("uma"), role="namespace_admin")
        )
    assert _code(na_promote) == grpc.StatusCode.PERMISSION_DENIED
    assert "platform admin" in na_promote.value.details()
    roles = {m.principal: m.role for m in admin.ListMembers(api.ListMembersRequest(namespace="team-ml")).members}
    assert roles[gw.principal_id("uma")] == "user"


def test_namespace_two_phase_delete(gw: GatewayUnderTest) -> None:
    admin = gw.as_user("root-admin", roles=("platform_admin",))
    admin.CreateNamespace(api.CreateNamespaceRequest(name="doomed"))
    admin.AddMember(api.AddMemberRequest(namespace="doomed", principal=gw.principal_id("u1"), role="user"))
    admin.CreateSandbox(api.CreateSandboxRequest(namespace="doomed", name="left-over"))
    with pytest.raises(grpc.RpcError) as blocked:
        admin.DeleteNamespace(api.DeleteNamespaceRequest(name="doomed"))
    assert _code(blocked) == grpc.StatusCode.FAILED_PRECONDITION
    assert "sandbox/left-over" in blocked.value.details()
    ns = admin.GetNamespace(api.GetNamespaceRequest(name="doomed")).namespace
    assert ns.phase == "Terminating"
    with pytest.raises(grpc.RpcError) as create:
        admin.CreateSandbox(api.CreateSandboxRequest(namespace="doomed", name="late"))
    assert _code(create) == grpc.StatusCode.FAILED_PRECONDITION
    admin.DeleteSandbox(api.DeleteSandboxRequest(namespace="doomed", name="left-over"))
    admin.DeleteNamespace(api.DeleteNamespaceRequest(name="doomed"))
    # Re-created under the same name: a new id, and no members carried over.
    again = admin.CreateNamespace(api.CreateNamespaceRequest(name="doomed")).namespace
    assert again.meta.id != ns.meta.id
    assert list(admin.ListMembers(api.ListMembersRequest(namespace="doomed")).members) == []
    with pytest.raises(grpc.RpcError) as default:
        admin.DeleteNamespace(api.DeleteNamespaceRequest(name="default"))
    assert _code(default) == grpc.StatusCode.FAILED_PRECONDITION


def test_local_mode_is_platform_admin_and_exec_works(local_gw: GatewayUnderTest) -> None:
    me = local_gw.client()
    who = me.WhoAmI(api.WhoAmIRequest())
    assert who.kind == "local" and list(who.global_roles) == ["platform_admin"]
    me.CreateSandbox(api.CreateSandboxRequest(name="demo"))
    out = list(
        me.ExecSandbox(
            api.ExecSandboxRequest(name="demo", argv=["sh", "-c", "echo hi > /workspace/f && cat /workspace/f"])
        )
    )
    assert b"".join(o.stdout for o in out) == b"hi\n"
    assert out[-1].WhichOneof("output") == "exit_code" and out[-1].exit_code == 0
