"""OCSF rendering: every event is a valid OCSF 1.x API Activity, and carries the gateway's facts."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import jsonschema
import py_ocsf_models
import pytest
from py_ocsf_models.events.base_event import BaseEvent
from py_ocsf_models.objects.api import API
from py_ocsf_models.objects.resource_details import ResourceDetails
from pydantic import ConfigDict, ValidationError

from openshell_authz._audit_chain import iter_events
from openshell_server.audit import (
    OCSF_VERSION,
    AuditRecord,
    AuditWriteError,
    JsonlChainSink,
    MemorySink,
    load_ocsf_schema,
    to_ocsf,
)

RecordFactory = Callable[..., AuditRecord]


class ApiActivity(BaseEvent):
    """OCSF API Activity assembled from py-ocsf-models, which ships no such class.

    Metadata/Product, API/Service/Request and ResourceDetails are the library's
    models; it has no Actor or Network Endpoint model, so those are left to the
    JSON Schema. ``extra="forbid"`` catches attributes OCSF does not define.
    """

    model_config = ConfigDict(extra="forbid")

    activity_id: Literal[0, 1, 2, 3, 4, 99]
    activity_name: str | None = None
    category_uid: Literal[6]
    category_name: str | None = None
    class_uid: Literal[6003]
    class_name: str | None = None
    type_uid: int
    type_name: str | None = None
    time: int
    status_id: Literal[0, 1, 2, 99] | None = None  # API Activity's status, not the Finding status enum
    actor: dict[str, Any]
    api: API
    resources: list[ResourceDetails] | None = None
    src_endpoint: dict[str, Any]


VALIDATOR = jsonschema.Draft202012Validator(load_ocsf_schema(), format_checker=jsonschema.FormatChecker())

ACTIONS = {
    "CreateSandbox": 1,
    'OpenShell::Action::"AddMember"': 1,
    "IssueServiceAccountToken": 1,
    "GetSandbox": 2,
    "ListAuditEvents": 2,
    "WhoAmI": 2,
    "UpdateNamespace": 3,
    "AttachProvider": 3,
    "DeleteProvider": 4,
    "RemoveMember": 4,
    "ExecSandbox": 99,
    "PushSandboxLogs": 99,
}


def _assert_valid(event: dict[str, Any]) -> None:
    VALIDATOR.validate(event)
    ApiActivity.model_validate(event)


def _variants(make_record: RecordFactory) -> list[AuditRecord]:
    """Records across actor kinds, outcomes, actions and sparse/odd optional fields."""
    records = []
    kinds = ["user", "service_account", "supervisor", "local"]
    outcomes = ["allowed", "denied", "error"]
    for (kind, outcome), action in zip(itertools.product(kinds, outcomes), itertools.cycle(ACTIONS), strict=False):
        records.append(
            make_record(
                actor_kind=kind,
                outcome=outcome,
                action=action,
                status_code={"allowed": "OK", "denied": "PERMISSION_DENIED", "error": "INTERNAL"}[outcome],
            )
        )
    records += [
        make_record(  # as sparse as the gateway may send
            actor_id="local",
            actor_kind="local",
            actor_issuer="",
            target_kind="",
            target_namespace="",
            target_name="",
            target_id="",
            policy_ids=(),
            policy_hash="",
            source_address="",
            correlation_id="",
        ),
        make_record(source_address="ipv6:[::1]:443", message="quota exceeded", extra={"quota": "exceeded"}),
        make_record(source_address="unix:/run/openshell.sock", actor_id="unix:bob"),
        make_record(actor_kind="supervisor", actor_id="sandbox:sb-1", on_behalf_of="https://idp#carol"),
        make_record(time=datetime(2025, 6, 1, 12, tzinfo=timezone(timedelta(hours=2)))),
    ]
    return records


def test_every_event_validates_against_schema_and_model(make_record: RecordFactory) -> None:
    for record in _variants(make_record):
        _assert_valid(to_ocsf(record))


def test_written_lines_with_chain_fields_validate(tmp_path: Path, make_record: RecordFactory) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlChainSink(path)
    for record in _variants(make_record):
        sink.emit(record)
    sink.close()
    events = list(iter_events([path]))
    assert len(events) == len(_variants(make_record))
    for event in events:
        VALIDATOR.validate(event)


@pytest.mark.parametrize(("action", "activity"), ACTIONS.items())
def test_activity_follows_the_action_verb(make_record: RecordFactory, action: str, activity: int) -> None:
    event = to_ocsf(make_record(action=action))
    assert (event["activity_id"], event["type_uid"]) == (activity, 600300 + activity)
    assert event["unmapped"]["cedar_action"] == action


def test_event_carries_the_gateway_facts(make_record: RecordFactory) -> None:
    record = make_record(
        time=datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC),
        actor_kind="service_account",
        actor_id="https://gw#system:serviceaccount:team-a:ci",
        actor_issuer="https://gw",
        outcome="denied",
        status_code="PERMISSION_DENIED",
        target_namespace="team-a",
        target_name="sb1",
        target_id="id-1",
        policy_ids=("forbid-terminating", "ns-user"),
        policy_hash="ab" * 32,
        correlation_id="req-42",
        source_address="ipv4:10.1.2.3:5151",
    )
    event = to_ocsf(record)
    assert (event["class_uid"], event["category_uid"]) == (6003, 6)
    assert event["time"] == int(record.time.timestamp() * 1000) == 1741064767890
    assert (event["status_id"], event["status"], event["status_code"]) == (2, "Failure", "PERMISSION_DENIED")
    assert event["severity_id"] == 2
    assert event["metadata"]["version"] == OCSF_VERSION == py_ocsf_models.OCSF_VERSION
    assert event["metadata"]["product"]["name"] == "OpenShell Gateway"
    assert event["metadata"]["product"]["vendor_name"] == "OpenShell"
    assert event["metadata"]["correlation_uid"] == "req-42"
    assert event["actor"]["user"] == {
        "uid": "https://gw#system:serviceaccount:team-a:ci",
        "name": "system:serviceaccount:team-a:ci",
        "type": "service_account",
        "type_id": 99,
    }
    assert event["actor"]["idp"] == {"name": "https://gw"}
    assert [a["policy"]["uid"] for a in event["actor"]["authorizations"]] == ["forbid-terminating", "ns-user"]
    assert {a["decision"] for a in event["actor"]["authorizations"]} == {"Deny"}
    assert event["api"]["operation"] == "CreateSandbox"
    assert event["api"]["service"]["name"] == "openshell.v1.OpenShell"
    assert event["resources"] == [{"uid": "id-1", "name": "sb1", "type": "sandbox", "namespace": "team-a"}]
    assert event["src_endpoint"] == {"ip": "10.1.2.3", "port": 5151}
    assert event["unmapped"]["cedar_policy_ids"] == ["forbid-terminating", "ns-user"]
    assert event["unmapped"]["policy_set_hash"] == "ab" * 32
    assert event["unmapped"]["outcome"] == "denied"
    assert event["unmapped"]["rpc"] == "/openshell.v1.OpenShell/CreateSandbox"


def test_supervisor_event_names_the_sandbox_creator(make_record: RecordFactory) -> None:
    event = to_ocsf(make_record(actor_kind="supervisor", actor_id="sandbox:1", on_behalf_of="https://idp#carol"))
    assert event["actor"]["user"]["type"] == "supervisor"
    assert event["unmapped"]["on_behalf_of"] == "https://idp#carol"
    assert "on_behalf_of" not in to_ocsf(make_record())["unmapped"]


def test_allowed_and_soft_quota_events(make_record: RecordFactory) -> None:
    plain = to_ocsf(make_record())
    assert (plain["status_id"], plain["severity_id"]) == (1, 1)
    quota = to_ocsf(make_record(extra={"quota": "exceeded"}, message="max_sandboxes 10, in use 11"))
    assert quota["unmapped"]["extra"] == {"quota": "exceeded"}
    assert quota["status_detail"] == "max_sandboxes 10, in use 11"
    assert quota["severity_id"] == 2


@pytest.mark.parametrize(
    ("address", "endpoint"),
    [
        ("ipv6:[::1]:8443", {"ip": "::1", "port": 8443}),
        ("127.0.0.1", {"ip": "127.0.0.1"}),
        ("unix:/run/gw.sock", {"name": "unix:/run/gw.sock"}),
        ("", {"name": "unknown"}),
    ],
)
def test_source_address_forms(make_record: RecordFactory, address: str, endpoint: dict[str, Any]) -> None:
    assert to_ocsf(make_record(source_address=address))["src_endpoint"] == endpoint


@pytest.mark.parametrize(
    "breakage",
    [
        lambda e: e.pop("actor"),
        lambda e: e.pop("src_endpoint"),
        lambda e: e.__setitem__("class_uid", 3005),
        lambda e: e.__setitem__("type_uid", 600302),  # activity is Create (1)
        lambda e: e["metadata"].__setitem__("version", "2.0.0"),
        lambda e: e["src_endpoint"].__setitem__("ip", "not-an-ip"),
        lambda e: e.__setitem__("made_up", 1),
    ],
)
def test_schema_rejects_non_conforming_events(make_record: RecordFactory, breakage: Callable[[dict], object]) -> None:
    event = to_ocsf(make_record())
    breakage(event)
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(event)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda e: e.__setitem__("made_up", 1),
        lambda e: e["api"].pop("operation"),
        lambda e: e["metadata"]["product"].pop("vendor_name"),
        lambda e: e.__setitem__("status_id", 5),
    ],
)
def test_library_model_rejects_non_conforming_events(
    make_record: RecordFactory, breakage: Callable[[dict], object]
) -> None:
    event = to_ocsf(make_record())
    breakage(event)
    with pytest.raises(ValidationError):
        ApiActivity.model_validate(event)


def test_record_validation(make_record: RecordFactory) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_record(time=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="outcome"):
        make_record(outcome="maybe")
    with pytest.raises(ValueError, match="actor_kind"):
        make_record(actor_kind="robot")
    assert make_record(policy_ids=["a", "b"]).policy_ids == ("a", "b")


def test_memory_sink_records_and_fails_on_demand(make_record: RecordFactory) -> None:
    sink = MemorySink()
    sink.emit(make_record())
    assert sink.records == [make_record()] and sink.events == [to_ocsf(make_record())]
    sink.failing = True
    with pytest.raises(AuditWriteError):
        sink.emit(make_record())
    assert len(sink.records) == 1
