"""Operations over the wire: gRPC health, server reflection, Prometheus metrics, live policy reload."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from openshell_server.settings import BUNDLED_POLICY_DIR
from tests.gateway.harness import GatewayUnderTest, api, call_status, start_gateway


def test_health_is_serving(gw_sqlite: GatewayUnderTest) -> None:
    stub = health_pb2_grpc.HealthStub(gw_sqlite.channel)
    for service in ("", "openshell.v1.OpenShell"):
        resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    try:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        raise AssertionError("an unknown service must not be reported")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_service(gw_sqlite: GatewayUnderTest) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(gw_sqlite.channel)
    requests = iter([
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="openshell.v1.OpenShell"),
    ])  # fmt: skip
    answers = list(stub.ServerReflectionInfo(requests, timeout=5))
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"openshell.v1.OpenShell", "grpc.health.v1.Health"} <= names
    files = answers[1].file_descriptor_response.file_descriptor_proto
    assert files and any(b"CreateSandbox" in f for f in files)


def test_metrics_count_decisions_by_action_and_outcome(gw_sqlite: GatewayUnderTest) -> None:
    admin = gw_sqlite.as_user("ops-root", roles=("platform_admin",))
    admin.CreateNamespace(api.CreateNamespaceRequest(name="metrics"))
    nobody = gw_sqlite.as_user("nobody")
    for _ in range(3):
        code, _, _ = call_status(nobody.GetNamespace, api.GetNamespaceRequest(name="metrics"))
        assert code == grpc.StatusCode.NOT_FOUND
    port = gw_sqlite.gateway.metrics.serve("127.0.0.1:0")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line and not line.startswith("#")}  # fmt: skip
    assert lines['openshell_authz_decisions_total{action="CreateNamespace",outcome="allow"}'] == 1.0
    assert lines['openshell_authz_decisions_total{action="GetNamespace",outcome="deny"}'] == 3.0
    assert lines["openshell_authz_decision_seconds_count"] >= 4
    assert lines['openshell_rpc_seconds_count{method="GetNamespace"}'] == 3.0


def test_policy_reload_keeps_old_set_on_error_and_takes_a_valid_change(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(BUNDLED_POLICY_DIR, policies)
    with start_gateway(tmp_path / "data", policy_dir=policies) as gw:
        holder = gw.gateway.policies
        admin = gw.as_user("ops-root", roles=("platform_admin",))
        auditor = gw.as_user("gail", roles=("auditor",))
        ask = api.CheckAccessRequest(action="GetGatewayConfig", kind="gateway")
        first = auditor.CheckAccess(ask)
        assert first.allowed and first.policy_set_hash == holder.current.policy_hash

        # A broken file: refused, the old set keeps deciding.
        (policies / "broken.cedar").write_text("permit (principal, action, resource) when { oops")
        assert holder.reload_now() is False
        assert holder.last_error
        assert auditor.CheckAccess(ask).policy_set_hash == first.policy_set_hash
        admin.CreateNamespace(api.CreateNamespaceRequest(name="still-works"))
        code, _, _ = call_status(auditor.UpdateGatewayConfig, api.UpdateGatewayConfigRequest())
        assert code == grpc.StatusCode.PERMISSION_DENIED
        (policies / "broken.cedar").unlink()

        # A change that breaks the set's own policy tests is refused too.
        (policies / "zz_ops.cedar").write_text(
            '@id("ops.no_config_for_auditors")\n'
            'forbid (principal in Role::"auditor", action == Action::"GetGatewayConfig", resource);\n'
        )
        assert holder.reload_now() is False and "policy test" in holder.last_error
        assert auditor.CheckAccess(ask).allowed

        # A valid change (the policy tests still pass): the hash changes and the new set decides.
        gail = gw.principal_id("gail")
        (policies / "zz_ops.cedar").write_text(
            '@id("ops.gail_is_suspended")\n'
            'forbid (principal, action == Action::"GetGatewayConfig", resource) when { principal == User::"'
            + gail
            + '" };\n'
        )
        assert holder.reload_now() is True, holder.last_error
        after = auditor.CheckAccess(ask)
        assert after.policy_set_hash != first.policy_set_hash
        assert after.policy_set_hash == holder.current.policy_hash
        assert not after.allowed and "ops.gail_is_suspended" in after.reasons
        code, _, _ = call_status(auditor.GetGatewayConfig, api.GetGatewayConfigRequest())
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert admin.CheckAccess(ask).allowed  # everyone else is unaffected
