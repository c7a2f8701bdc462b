"""Soft quotas (allow, audit each excess) and the quota ceiling rule, through the wire (SPEC §4, §6)."""

from __future__ import annotations

import grpc

from openshell_server.api import resources_pb2 as pb
from tests.audit_gateway._log import extra, operation, read_events
from tests.gateway.harness import GatewayUnderTest, api, call_status
from tests.quota._burst import burst, create_call, quota_namespace

CALLS, LIMIT = 50, 10


def test_soft_mode_lets_every_create_through_and_audits_each_excess(gw: GatewayUnderTest) -> None:
    admin = gw.as_user("root", roles=("platform_admin",))
    quota_namespace(admin, "soft", max_sandboxes=LIMIT, mode="soft")
    result = burst([create_call(admin, "soft", f"sbx-{i}") for i in range(CALLS)])
    print(result.figures(f"soft limit {LIMIT}, one gateway on {gw.gateway.store.backend}"))
    assert result.ok == CALLS

    creates = [e for e in read_events(gw.data_dir) if operation(e) == "CreateSandbox"]
    assert len(creates) == CALLS  # one event per call, excess or not
    assert all(e["unmapped"]["outcome"] == "allowed" for e in creates)
    exceeded = [e for e in creates if extra(e).get("quota") == "exceeded"]
    assert len(exceeded) == CALLS - LIMIT
    in_use = sorted(int(extra(e)["quota_violations"].split("in use ")[1].split(",")[0]) for e in exceeded)
    assert in_use == list(range(LIMIT, CALLS))  # each excess saw the exact count before it
    assert all(e["severity_id"] >= 2 for e in exceeded)


CEILING = pb.Limits(max_sandboxes=10, max_gpus=4, max_sandbox_lifetime_seconds=3600)


def _update(stub: object, **fields: object) -> tuple[grpc.StatusCode, str]:
    code, message, _ = call_status(stub.UpdateNamespace, api.UpdateNamespaceRequest(name="capped", **fields))  # type: ignore[attr-defined]
    return code, message


def test_namespace_admin_may_lower_limits_within_the_ceiling_only(gw_sqlite: GatewayUnderTest) -> None:
    gw = gw_sqlite
    admin = gw.as_user("root", roles=("platform_admin",))
    admin.CreateNamespace(api.CreateNamespaceRequest(name="capped", quota=CEILING, ceiling=CEILING))
    admin.AddMember(
        api.AddMemberRequest(namespace="capped", principal=gw.principal_id("nadia"), role="namespace_admin")
    )
    admin.AddMember(api.AddMemberRequest(namespace="capped", principal=gw.principal_id("uma"), role="user"))
    nadia, uma = gw.as_user("nadia"), gw.as_user("uma")
    ok, denied = grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED
    ceiling_msg = "limits may only be set at or below the namespace's quota ceiling"

    assert _update(nadia, quota=pb.Limits(max_sandboxes=5, max_gpus=2, max_sandbox_lifetime_seconds=600)) == (ok, "")
    assert _update(nadia, quota=CEILING) == (ok, "")  # at the ceiling
    for above in (
        pb.Limits(max_sandboxes=11, max_gpus=4, max_sandbox_lifetime_seconds=3600),
        pb.Limits(max_sandboxes=10, max_gpus=5, max_sandbox_lifetime_seconds=3600),
        pb.Limits(max_sandboxes=10, max_gpus=4, max_sandbox_lifetime_seconds=3601),
        pb.Limits(max_sandboxes=0, max_gpus=4, max_sandbox_lifetime_seconds=3600),  # 0 = unlimited
    ):
        assert _update(nadia, quota=above) == (denied, ceiling_msg), above
    for fields in ({"ceiling": pb.Limits(max_sandboxes=20)}, {"quota_mode": "soft"},
                   {"labels": pb.Labels(items={"team": "x"})}):  # fmt: skip
        code, _ = _update(nadia, **fields)
        assert code == denied, fields
    assert _update(nadia, quota_mode="hard")[0] == ok  # restating the current mode changes nothing
    assert _update(uma, quota=pb.Limits(max_sandboxes=1))[0] == denied

    ns = admin.GetNamespace(api.GetNamespaceRequest(name="capped")).namespace
    assert (ns.quota.max_sandboxes, ns.ceiling.max_sandboxes, ns.quota_mode, dict(ns.meta.labels)) == (
        10,
        10,
        "hard",
        {},
    )

    # The platform admin may do all of it.
    assert _update(admin, ceiling=pb.Limits(max_sandboxes=20, max_gpus=8)) == (ok, "")
    assert _update(admin, quota=pb.Limits(max_sandboxes=30)) == (ok, "")
    assert _update(admin, quota_mode="soft", labels=pb.Labels(items={"team": "x"})) == (ok, "")
    ns = admin.GetNamespace(api.GetNamespaceRequest(name="capped")).namespace
    assert (ns.quota.max_sandboxes, ns.ceiling.max_sandboxes, ns.quota_mode, dict(ns.meta.labels)) == (
        30, 20, "soft", {"team": "x"},
    )  # fmt: skip
    # Now under a raised ceiling the namespace admin may raise its limit up to it.
    assert _update(nadia, quota=pb.Limits(max_sandboxes=20, max_gpus=8, max_sandbox_lifetime_seconds=1)) == (ok, "")
