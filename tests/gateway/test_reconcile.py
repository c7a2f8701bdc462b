"""The reconciler: stored sandboxes the driver lost become Error; unknown driver sandboxes are adopted."""

from __future__ import annotations

from openshell_server.drivers import SandboxSpec
from tests.gateway.harness import GatewayUnderTest, api


def test_orphans_marked_error_and_unknown_driver_sandboxes_adopted(local_gw: GatewayUnderTest) -> None:
    me = local_gw.client()
    me.CreateNamespace(api.CreateNamespaceRequest(name="team-a"))
    kept = me.CreateSandbox(api.CreateSandboxRequest(namespace="team-a", name="kept")).sandbox
    lost = me.CreateSandbox(api.CreateSandboxRequest(namespace="team-a", name="lost")).sandbox
    gw = local_gw.gateway

    # The driver loses one sandbox behind the gateway's back...
    gw.driver.delete(SandboxSpec(id=lost.meta.id, name="lost", namespace="team-a", namespace_id=lost.meta.id))
    # ...and runs two the store has never heard of: one labelled with a namespace, one not.
    gw.driver.create(SandboxSpec(id="11111111-aaaa-4bbb-8ccc-000000000001", name="stray", namespace="team-a",
                                 namespace_id="x"))  # fmt: skip
    gw.driver.create(SandboxSpec(id="11111111-aaaa-4bbb-8ccc-000000000002", name="nowhere", namespace="gone-ns",
                                 namespace_id="y"))  # fmt: skip

    orphans, adopted = gw.background.reconcile_once()
    # The driver watch may already have marked the lost sandbox; either way it ends in Error.
    assert adopted == 2 and orphans in (0, 1)

    by_name = {s.meta.name: s for s in me.ListSandboxes(api.ListSandboxesRequest(all_namespaces=True)).sandboxes}
    assert by_name["lost"].phase == "Error"
    assert by_name["kept"].phase != "Error"
    assert by_name["stray"].meta.namespace == "team-a"
    assert by_name["stray"].meta.id == "11111111-aaaa-4bbb-8ccc-000000000001"
    # A namespace the gateway does not know falls back to default.
    assert by_name["nowhere"].meta.namespace == "default"
    assert kept.meta.id in {s.meta.id for s in by_name.values()}

    # Reconciling again changes nothing more.
    assert gw.background.reconcile_once() == (0, 0)
