"""Reading the gateway's audit trail back: verify, ListAuditEvents scope/filters/pages, policy diff replay."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from openshell_server.settings import BUNDLED_POLICY_DIR
from tests.audit_gateway._log import namespace, read_events
from tests.audit_gateway._world import World
from tests.gateway.harness import api, call_status


def _authz_cli(*args: object) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("openshell-authz")
    return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


def test_audit_verify_accepts_the_gateway_log_and_names_a_tampered_line(world: World, tmp_path: Path) -> None:
    ok = _authz_cli("audit", "verify", world.audit_file)
    assert ok.returncode == 0, ok.stderr
    assert f"ok: {len(read_events(world.gw.data_dir))} lines" in ok.stdout

    copy = tmp_path / "audit.jsonl"
    lines = world.audit_file.read_bytes().splitlines(keepends=True)
    target = next(i for i, line in enumerate(lines) if b"#uma" in line and i > 2)
    lines[target] = lines[target].replace(b"#uma", b"#eve", 1)
    copy.write_bytes(b"".join(lines))
    bad = _authz_cli("audit", "verify", copy)
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"{copy}:{target + 1}: line content does not match its own hash")


def _list(stub: object, **fields: object) -> tuple[grpc.StatusCode, list[dict], str]:
    code, message, resp = call_status(stub.ListAuditEvents, api.ListAuditEventsRequest(page_size=1000, **fields))  # type: ignore[attr-defined]
    if code != grpc.StatusCode.OK:
        return code, [], message
    return code, [json.loads(e) for e in resp.events], resp.next_page_token


def test_list_audit_events_is_scoped_by_role(world: World) -> None:
    all_events = read_events(world.gw.data_dir)
    aldo, gail, uma = world.user("aldo"), world.user("gail", "auditor"), world.user("uma")

    code, team, _ = _list(aldo, namespace="team")
    assert code == grpc.StatusCode.OK
    assert team and {namespace(e) for e in team} == {"team"}
    assert len(team) == sum(1 for e in all_events if namespace(e) == "team")
    assert _list(aldo, namespace="other")[0] == grpc.StatusCode.NOT_FOUND  # not even its existence
    assert _list(aldo, all_namespaces=True)[0] == grpc.StatusCode.PERMISSION_DENIED

    code, everything, _ = _list(gail, all_namespaces=True)
    assert code == grpc.StatusCode.OK
    assert len(everything) >= len(all_events)  # this module's denials above were audited too
    assert {"team", "other", "gone", ""} <= {namespace(e) for e in everything}

    assert _list(uma, namespace="team")[0] == grpc.StatusCode.PERMISSION_DENIED


def test_list_audit_events_filters_and_pages(world: World) -> None:
    gail = world.user("gail", "auditor")
    nadia = world.pid("nadia")
    code, by_nadia, _ = _list(gail, all_namespaces=True, principal=nadia)
    assert code == grpc.StatusCode.OK and by_nadia
    assert all(e["actor"]["user"]["uid"] == nadia for e in by_nadia)

    _, uma_or_for_uma, _ = _list(gail, all_namespaces=True, principal=world.pid("uma"))
    assert any(e["actor"]["user"]["type"] == "supervisor" for e in uma_or_for_uma)  # acted on uma's behalf

    _, creates, _ = _list(gail, all_namespaces=True, operation="CreateSandbox")
    assert len(creates) == 3 and {e["api"]["operation"] for e in creates} == {"CreateSandbox"}

    _, denied, _ = _list(gail, all_namespaces=True, outcome="denied")
    assert denied and all(e["unmapped"]["outcome"] == "denied" for e in denied)
    assert _list(gail, all_namespaces=True, outcome="maybe")[0] == grpc.StatusCode.INVALID_ARGUMENT

    future = Timestamp()
    future.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    assert _list(gail, all_namespaces=True, since=future)[1] == []
    since = Timestamp()
    since.FromDatetime(world.started - timedelta(seconds=1))
    _, window, _ = _list(gail, all_namespaces=True, since=since, until=future)
    _, unbounded, _ = _list(gail, all_namespaces=True)
    assert window and len(window) == len(unbounded)

    seen: list[str] = []
    token = ""
    while True:
        resp = gail.ListAuditEvents(api.ListAuditEventsRequest(all_namespaces=True, outcome="allowed", page_size=4,
                                                               page_token=token))  # fmt: skip
        assert len(resp.events) <= 4
        seen.extend(json.loads(e)["hash"] for e in resp.events)
        token = resp.next_page_token
        if not token:
            break
    _, whole, _ = _list(gail, all_namespaces=True, outcome="allowed")
    assert seen == [e["hash"] for e in whole] and len(seen) > 4 and len(set(seen)) == len(seen)


def test_diff_replays_the_gateway_log_and_lists_changed_decisions(world: World, tmp_path: Path) -> None:
    new = tmp_path / "policies"
    shutil.copytree(BUNDLED_POLICY_DIR, new)
    path = new / "namespace_roles.cedar"
    text = path.read_text()
    start = text.index('@id("user.work")')
    path.write_text(text[:start] + text[text.index("};", start) + 2 :])  # remove the user permit

    result = _authz_cli("diff", BUNDLED_POLICY_DIR, new, "--requests", world.audit_file)
    assert result.returncode == 0, result.stderr
    events = read_events(world.gw.data_dir)
    summary = re.search(r"^requests: (\d+) replayed, (\d+) events without a recorded request, (\d+) decisions change$",
                        result.stdout, re.M)  # fmt: skip
    assert summary, result.stdout
    assert int(summary.group(1)) == len(events)  # every gateway event carries its request
    changed = {int(m.group(1)) for m in re.finditer(r"^  event (\d+): .*: allow -> deny", result.stdout, re.M)}
    uma = world.pid("uma")
    expected = {i for i, e in enumerate(events, start=1)
                if e["actor"]["user"]["uid"] == uma and e["unmapped"]["outcome"] == "allowed"}  # fmt: skip
    assert expected and changed == expected
    assert int(summary.group(3)) == len(expected)
