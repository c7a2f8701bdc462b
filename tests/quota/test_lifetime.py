"""Sandbox lifetime: the reaper removes sandboxes past their namespace's limit, across restarts (SPEC §6)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from openshell_server.api import resources_pb2 as pb
from tests.audit_gateway._log import namespace, read_events
from tests.gateway.harness import GatewayUnderTest, api, start_gateway

REAPER = {"reaper_interval_seconds": 0.1}


def _eventually(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _names(gw: GatewayUnderTest, ns: str) -> set[str]:
    admin = gw.as_user("root", roles=("platform_admin",))
    return {s.meta.name for s in admin.ListSandboxes(api.ListSandboxesRequest(namespace=ns)).sandboxes}


def _reaper_events(data_dir: Path) -> list[dict]:
    return [e for e in read_events(data_dir) if e["actor"]["user"]["uid"] == "system:gateway"]


def test_reaper_removes_a_sandbox_past_its_lifetime_with_an_audit_event(tmp_path: Path) -> None:
    with start_gateway(tmp_path / "data", **REAPER) as gw:
        admin = gw.as_user("root", roles=("platform_admin",))
        admin.CreateNamespace(api.CreateNamespaceRequest(name="brief", quota=pb.Limits(max_sandbox_lifetime_seconds=1)))
        admin.AddMember(api.AddMemberRequest(namespace="brief", principal=gw.principal_id("uma"), role="user"))
        uma = gw.as_user("uma")
        box = uma.CreateSandbox(api.CreateSandboxRequest(namespace="brief", name="short")).sandbox
        assert box.HasField("expires_at")
        assert _eventually(lambda: "short" not in _names(gw, "brief"))
        assert "short" not in {obj.name for obj in gw.gateway.driver.list()}  # the driver's sandbox went too

        (event,) = _reaper_events(gw.data_dir)
        assert event["actor"]["user"]["type"] == "system"
        assert event["unmapped"]["cedar_action"] == "DeleteSandbox"
        assert event["unmapped"]["on_behalf_of"] == gw.principal_id("uma")
        assert namespace(event) == "brief" and event["resources"][0]["uid"] == box.meta.id
        assert event["status_detail"] == "sandbox lifetime exceeded"


def test_lowering_the_lifetime_limit_reaps_sandboxes_already_running(tmp_path: Path) -> None:
    with start_gateway(tmp_path / "data", **REAPER) as gw:
        admin = gw.as_user("root", roles=("platform_admin",))
        admin.CreateNamespace(api.CreateNamespaceRequest(name="later"))
        admin.CreateSandbox(api.CreateSandboxRequest(namespace="later", name="old"))
        time.sleep(0.3)
        assert _names(gw, "later") == {"old"}  # no limit yet: it stays
        admin.UpdateNamespace(api.UpdateNamespaceRequest(name="later", quota=pb.Limits(max_sandbox_lifetime_seconds=1)))
        assert _eventually(lambda: not _names(gw, "later"))
        assert len(_reaper_events(gw.data_dir)) == 1


def test_reaper_picks_up_after_a_gateway_restart(tmp_path: Path, backend_url: str) -> None:
    data = tmp_path / "data"
    with start_gateway(data, database_url=backend_url, reaper_interval_seconds=0) as first:  # no reaper
        admin = first.as_user("root", roles=("platform_admin",))
        admin.CreateNamespace(api.CreateNamespaceRequest(name="restart"))
        admin.CreateSandbox(api.CreateSandboxRequest(namespace="restart", name="doomed", lifetime_seconds=1))
        admin.CreateSandbox(api.CreateSandboxRequest(namespace="restart", name="kept"))
        creator = first.principal_id("root")
    time.sleep(1.2)  # the lifetime ends while no gateway runs
    with start_gateway(data, database_url=backend_url, **REAPER) as second:
        assert _eventually(lambda: _names(second, "restart") == {"kept"})
        (event,) = _reaper_events(data)
        assert event["resources"][0]["name"] == "doomed"
        assert event["unmapped"]["on_behalf_of"] == creator
