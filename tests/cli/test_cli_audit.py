"""``openshell audit list``: the ListAuditEvents request it sends (filters, times, namespace scope),
paging and ``--limit``, table and JSON output, usage errors, and a run against a real gateway."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from openshell_server.api import openshell_pb2 as pb
from openshell_server.cli import main
from tests.gateway.harness import start_gateway

from .fake_gateway import FakeGateway
from .test_cli import run


def event(operation: str, name: str, *, namespace: str = "team-ml", outcome: str = "allowed") -> str:
    """One audit event shaped like ``openshell_server.audit._ocsf.to_ocsf`` output."""
    return json.dumps(
        {
            "time": 1714564800123,  # 2024-05-01T12:00:00.123Z
            "actor": {"user": {"uid": "https://idp#alice", "name": "alice"}},
            "api": {"operation": operation},
            "status_code": "OK" if outcome == "allowed" else "PERMISSION_DENIED",
            "unmapped": {"cedar_action": f'OpenShell::Action::"{operation}"', "outcome": outcome},
            "resources": [{"uid": "id-1", "name": name, "type": "sandbox", "namespace": namespace}],
        }
    )


def stamp(text: str) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.fromisoformat(text))
    return ts


def test_sends_filters_and_utc_times_and_namespace(gateway: FakeGateway, capsys) -> None:
    gateway.reply("ListAuditEvents", pb.ListAuditEventsResponse())
    code, out, err = run(
        capsys,
        "audit", "list", "-n", "team-ml",
        "--principal", "https://idp#alice", "--operation", "CreateSandbox", "--outcome", "denied",
        "--since", "2024-05-01T12:00:00+02:00", "--until", "2024-05-02",
    )  # fmt: skip
    assert (code, err, out) == (0, "", "No resources found.\n")
    assert gateway.only_call().request == pb.ListAuditEventsRequest(
        namespace="team-ml",
        principal="https://idp#alice",
        operation="CreateSandbox",
        outcome="denied",
        since=stamp("2024-05-01T10:00:00+00:00"),  # the offset is applied ...
        until=stamp("2024-05-02T00:00:00+00:00"),  # ... and a bare date is UTC midnight
    )


def test_all_namespaces_follows_every_page_and_prints_table(gateway: FakeGateway, capsys) -> None:
    gateway.reply(
        "ListAuditEvents",
        pb.ListAuditEventsResponse(events=[event("CreateSandbox", "box")], next_page_token="p2"),
        pb.ListAuditEventsResponse(events=[event("DeleteSandbox", "old", namespace="ns2", outcome="denied")]),
    )
    code, out, err = run(capsys, "audit", "list", "-A")
    assert (code, err) == (0, "")
    assert [c.request for c in gateway.calls] == [
        pb.ListAuditEventsRequest(all_namespaces=True),
        pb.ListAuditEventsRequest(all_namespaces=True, page_token="p2"),
    ]
    assert out.splitlines() == [
        "TIME                  ACTOR              OPERATION      NAMESPACE  TARGET  OUTCOME  STATUS",
        "2024-05-01T12:00:00Z  https://idp#alice  CreateSandbox  team-ml    box     allowed  OK",
        "2024-05-01T12:00:00Z  https://idp#alice  DeleteSandbox  ns2        old     denied   "
        "PERMISSION_DENIED",
    ]


def test_missing_fields_render_as_dash(gateway: FakeGateway, capsys) -> None:
    gateway.reply("ListAuditEvents", pb.ListAuditEventsResponse(events=['{"api": {"operation": "WhoAmI"}}']))
    code, out, _ = run(capsys, "audit", "list")
    assert code == 0
    assert out.splitlines()[1].split() == ["-", "-", "WhoAmI", "-", "-", "-", "-"]


def test_json_prints_the_events_as_a_list(gateway: FakeGateway, capsys) -> None:
    events = [event("CreateSandbox", "a"), event("CreateSandbox", "b")]
    gateway.reply(
        "ListAuditEvents",
        pb.ListAuditEventsResponse(events=events[:1], next_page_token="t"),
        pb.ListAuditEventsResponse(events=events[1:]),
    )
    code, out, _ = run(capsys, "-o", "json", "audit", "list")
    assert code == 0
    assert json.loads(out) == [json.loads(e) for e in events]


def test_limit_sizes_pages_and_stops_paging_early(gateway: FakeGateway, capsys) -> None:
    a, b, c, d = (event("CreateSandbox", name) for name in "abcd")
    gateway.reply(
        "ListAuditEvents",
        pb.ListAuditEventsResponse(events=[a, b], next_page_token="t2"),
        pb.ListAuditEventsResponse(events=[c, d], next_page_token="t3"),
    )
    code, out, _ = run(capsys, "-o", "json", "audit", "list", "--limit", "3")
    assert code == 0
    assert [e["resources"][0]["name"] for e in json.loads(out)] == ["a", "b", "c"]
    # Two pages were enough: the third ("t3") is never asked for.
    assert [c.request for c in gateway.calls] == [
        pb.ListAuditEventsRequest(page_size=3),
        pb.ListAuditEventsRequest(page_size=3, page_token="t2"),
    ]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--since", "yesterday"], "argument --since: invalid time 'yesterday'"),
        (["--until", "2024-13-01"], "argument --until: invalid time '2024-13-01'"),
        (["--since", "2024-05-02", "--until", "2024-05-01"], "--since must be earlier than --until"),
        (["--limit", "0"], "argument --limit: must be 1 or more"),
        (["--outcome", "maybe"], "argument --outcome: invalid choice"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(
    gateway: FakeGateway, capsys, flags: list[str], message: str
) -> None:
    code, out, err = run(capsys, "audit", "list", *flags)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {message}")
    assert err.count("\n") == 1
    assert gateway.calls == []  # nothing was sent


def test_event_that_is_not_json_is_a_protocol_error(gateway: FakeGateway, capsys) -> None:
    gateway.reply("ListAuditEvents", pb.ListAuditEventsResponse(events=["{not json"]))
    code, _, err = run(capsys, "audit", "list")
    assert code == 3
    assert err.startswith("error: the gateway sent an audit event that is not JSON")


def test_real_gateway_shows_create_events(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENSHELL_TOKEN", "OPENSHELL_NAMESPACE", "OPENSHELL_GATEWAY", "OPENSHELL_TLS_CA"):
        monkeypatch.delenv(name, raising=False)
    with start_gateway(tmp_path / "data", oidc=False) as gw:
        stub = gw.client()
        stub.CreateNamespace(pb.CreateNamespaceRequest(name="audited"))
        stub.CreateSandbox(pb.CreateSandboxRequest(namespace="audited", name="box"))
        address = f"127.0.0.1:{gw.port}"

        code, out, err = run(capsys, "--gateway", address, "audit", "list", "-A")
        assert (code, err) == (0, "")
        rows = [line.split() for line in out.splitlines()[1:]]
        assert {(r[2], r[3], r[4], r[5], r[6]) for r in rows} >= {
            ("CreateNamespace", "audited", "audited", "allowed", "OK"),
            ("CreateSandbox", "audited", "box", "allowed", "OK"),
        }

        argv = ["--gateway", address, "-o", "json", "audit", "list", "-A", "--operation", "CreateSandbox"]
        assert main(argv) == 0
        events: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
        assert [(e["api"]["operation"], e["resources"][0]["name"]) for e in events] == [
            ("CreateSandbox", "box")
        ]
        now = datetime.now(UTC).timestamp() * 1000
        assert abs(events[0]["time"] - now) < 3_600_000  # stamped with the real clock, not zero
