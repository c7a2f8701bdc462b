"""Values the store cannot hold are INVALID_ARGUMENT naming the field, on both stores.

PostgreSQL text cannot hold NUL and its integer columns are 32-bit: before these checks a
NUL sandbox_id or a resource_version of -2**63 reached the store and came back as
INTERNAL (both found by the deep wire fuzzer).
"""

from __future__ import annotations

import grpc
import pytest

from tests.gateway.harness import GatewayUnderTest, api


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("RefreshSandboxToken", api.RefreshSandboxTokenRequest(sandbox_id="\x00"), "sandbox_id"),
        ("GetSandbox", api.GetSandboxRequest(namespace="default", name="box\x00"), "name"),
        ("CreateNamespace", api.CreateNamespaceRequest(name="team", labels={"k": "v\x00"}), "labels"),
        ("AddMember", api.AddMemberRequest(namespace="default", principal="a\x00b", role="user"), "principal"),
        ("ListAuditEvents", api.ListAuditEventsRequest(principal="\x00"), "principal"),
        ("UpdateNamespace", api.UpdateNamespaceRequest(name="default", resource_version=-(2**63)), "resource_version"),
        ("CreateNamespace", api.CreateNamespaceRequest(name="team", quota={"max_sandboxes": 2**40}), "quota."),
        ("CreateSandbox", api.CreateSandboxRequest(name="box", gpus=-1), "gpus"),
    ],
)
def test_unstorable_value_is_invalid_argument_naming_the_field(
    gw: GatewayUnderTest, method: str, request_: object, field: str
) -> None:
    admin = gw.as_user("nul-admin", roles=("platform_admin",))
    with pytest.raises(grpc.RpcError) as err:
        getattr(admin, method)(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field)
    assert "\n" not in err.value.details()
    # Nothing was written.
    assert [n.meta.name for n in admin.ListNamespaces(api.ListNamespacesRequest()).namespaces] == ["default"]
