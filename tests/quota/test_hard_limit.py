"""Hard quota through the wire: N concurrent creates against a limit of K leave exactly K (SPEC §6).

On SQLite and PostgreSQL behind one gateway, and with two ``openshell-gateway``
processes sharing one PostgreSQL store. Lowering a limit refuses new creates and
removes nothing.
"""

from __future__ import annotations

import grpc

from openshell_server.api import resources_pb2 as pb
from tests.gateway.harness import GatewayUnderTest, api, call_status
from tests.quota._burst import burst, create_call, quota_namespace

CALLS, LIMIT = 50, 10


def _assert_refusals_name_the_limit(refusals: tuple[str, ...], limit: int) -> None:
    for message in refusals:
        assert f"quota max_sandboxes={limit} of namespace" in message, message
        assert f"{limit} in use" in message, message  # current use: the limit is reached exactly


def test_concurrent_creates_never_exceed_a_hard_limit(gw: GatewayUnderTest) -> None:
    admin = gw.as_user("root", roles=("platform_admin",))
    quota_namespace(admin, "burst", max_sandboxes=LIMIT)
    result = burst([create_call(admin, "burst", f"sbx-{i}") for i in range(CALLS)])
    print(result.figures(f"hard limit {LIMIT}, one gateway on {gw.gateway.store.backend}"))

    assert result.ok == LIMIT
    assert result.codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == CALLS - LIMIT
    _assert_refusals_name_the_limit(result.refusals, LIMIT)
    listed = admin.ListSandboxes(api.ListSandboxesRequest(namespace="burst", page_size=1000)).sandboxes
    assert len(listed) == LIMIT
    ns_id = gw.gateway.store.get_namespace_by_name("burst").id
    assert gw.gateway.store.get_namespace_usage(ns_id).sandboxes == LIMIT


def test_lowering_a_limit_below_use_refuses_creates_and_removes_nothing(gw: GatewayUnderTest) -> None:
    admin = gw.as_user("root", roles=("platform_admin",))
    quota_namespace(admin, "shrink", max_sandboxes=10)
    for i in range(5):
        admin.CreateSandbox(api.CreateSandboxRequest(namespace="shrink", name=f"keep-{i}"))
    admin.UpdateNamespace(
        api.UpdateNamespaceRequest(name="shrink", quota=pb.Limits(max_sandboxes=3), ceiling=pb.Limits(max_sandboxes=3))
    )

    code, message, _ = call_status(admin.CreateSandbox, api.CreateSandboxRequest(namespace="shrink", name="one-more"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota max_sandboxes=3 of namespace 'shrink' exceeded: 5 in use" in message
    names = {s.meta.name for s in admin.ListSandboxes(api.ListSandboxesRequest(namespace="shrink")).sandboxes}
    assert names == {f"keep-{i}" for i in range(5)}

    # Back under the limit, creates work again.
    for i in range(3):
        admin.DeleteSandbox(api.DeleteSandboxRequest(namespace="shrink", name=f"keep-{i}"))
    admin.CreateSandbox(api.CreateSandboxRequest(namespace="shrink", name="fits"))
    code, _, _ = call_status(admin.CreateSandbox, api.CreateSandboxRequest(namespace="shrink", name="no-room"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
