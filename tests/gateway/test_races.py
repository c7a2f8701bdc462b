"""Namespace deletion racing concurrent sandbox creation never leaves an orphan (SPEC §5), on both stores."""

from __future__ import annotations

import threading

import grpc

from openshell_server import store as st
from tests.gateway.harness import GatewayUnderTest, api, call_status

CREATES = 20


def _race(gw: GatewayUnderTest, ns: str, *, with_blocker: bool) -> None:
    admin = gw.as_user("race-root", roles=("platform_admin",))
    ns_id = admin.CreateNamespace(api.CreateNamespaceRequest(name=ns)).namespace.meta.id
    if with_blocker:  # a sandbox already there: the first delete attempt cannot complete
        admin.CreateSandbox(api.CreateSandboxRequest(namespace=ns, name="blocker"))
    admin.AddMember(api.AddMemberRequest(namespace=ns, principal=gw.principal_id("racer"), role="user"))
    racer = gw.as_user("racer")
    created: list[str] = []
    outcomes: list[grpc.StatusCode] = []
    lock = threading.Lock()
    go = threading.Barrier(CREATES + 1)

    def create(i: int) -> None:
        go.wait()
        code, _, result = call_status(racer.CreateSandbox, api.CreateSandboxRequest(namespace=ns, name=f"s{i}"))
        with lock:
            outcomes.append(code)
            if code == grpc.StatusCode.OK:
                created.append(result.sandbox.meta.id)

    def delete() -> None:
        go.wait()
        code, _, _ = call_status(admin.DeleteNamespace, api.DeleteNamespaceRequest(name=ns))
        with lock:
            outcomes.append(code)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(CREATES)] + [threading.Thread(target=delete)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    allowed_codes = {grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND}
    assert set(outcomes) <= allowed_codes, outcomes

    store = gw.gateway.store
    rows = store.list_sandboxes({ns_id}, page_size=1000).items
    try:
        rec = store.get_namespace_by_id(ns_id)
    except st.NotFound:
        assert rows == [], f"orphan sandboxes of deleted namespace {ns}: {[r.name for r in rows]}"
        # Deletion completes only when nothing is left, and nobody deletes sandboxes during the race.
        assert created == [] and not with_blocker, f"reported created, then vanished: {created}"
        return
    assert rec.phase in ("Active", "Terminating")
    assert {r.id for r in rows} >= set(created), "a sandbox reported created is missing"
    # Everything left is visible through the API and the namespace can then be cleaned up.
    listed = {s.meta.id for s in admin.ListSandboxes(api.ListSandboxesRequest(namespace=ns)).sandboxes}
    assert listed == {r.id for r in rows}
    for r in rows:
        admin.DeleteSandbox(api.DeleteSandboxRequest(namespace=ns, name=r.name))
    admin.DeleteNamespace(api.DeleteNamespaceRequest(name=ns))
    assert store.list_sandboxes({ns_id}, page_size=1000).items == []
    code, _, _ = call_status(admin.GetNamespace, api.GetNamespaceRequest(name=ns))
    assert code == grpc.StatusCode.NOT_FOUND


def test_delete_races_creates(gw: GatewayUnderTest) -> None:
    for round_ in range(3):
        _race(gw, f"race-{round_}", with_blocker=False)
    _race(gw, "race-blocked", with_blocker=True)
