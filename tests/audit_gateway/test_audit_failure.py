"""Nothing is lost: when the audit event cannot be written, the mutating call fails and commits nothing."""

from __future__ import annotations

import grpc
import pytest

from openshell_server import store as st
from openshell_server.audit import MemorySink
from tests.gateway.harness import GatewayUnderTest, api, call_status


def test_an_audit_write_failure_fails_the_call_and_rolls_the_mutation_back(gw: GatewayUnderTest) -> None:
    admin = gw.as_user("root", roles=("platform_admin",))
    admin.CreateNamespace(api.CreateNamespaceRequest(name="kept"))
    admin.CreateSandbox(api.CreateSandboxRequest(namespace="kept", name="box"))
    store = gw.gateway.store
    ns_id = store.get_namespace_by_name("kept").id
    before = store.get_sandbox(ns_id, "box")

    sink = MemorySink()
    sink.failing = True
    gw.running.gateway.audit = sink

    for rpc, request in (
        ("CreateNamespace", api.CreateNamespaceRequest(name="lost")),
        ("CreateSandbox", api.CreateSandboxRequest(namespace="kept", name="lost")),
        ("DeleteSandbox", api.DeleteSandboxRequest(namespace="kept", name="box")),
        ("AddMember", api.AddMemberRequest(namespace="kept", principal=gw.principal_id("uma"), role="user")),
    ):
        code, message, _ = call_status(getattr(admin, rpc), request)
        assert code == grpc.StatusCode.UNAVAILABLE, (rpc, code, message)

    with pytest.raises(st.NotFound):
        store.get_namespace_by_name("lost")
    with pytest.raises(st.NotFound):
        store.get_sandbox(ns_id, "lost")
    after = store.get_sandbox(ns_id, "box")  # not deleted, not even marked Deleting
    assert after.id == before.id and after.phase == "Ready"
    assert {obj.name for obj in gw.gateway.driver.list()} == {"box"}  # the driver was never asked either
    assert store.memberships_of(gw.principal_id("uma")) == []
    assert sink.records == []

    sink.failing = False  # the sink recovers: the same calls now succeed, each with its event
    admin.CreateNamespace(api.CreateNamespaceRequest(name="lost"))
    assert [r.action for r in sink.records] == ["CreateNamespace"]
