"""One audit event per mutating call and per denial, with the right actor and namespace (SPEC §4, §9)."""

from __future__ import annotations

import grpc
import jsonschema

from openshell_server.audit import load_ocsf_schema
from tests.audit_gateway._log import namespace, operation, read_events
from tests.audit_gateway._world import MUTATING_RPCS, World


def test_every_mutating_rpc_is_in_the_script(world: World) -> None:
    succeeded = {s.rpc for s in world.steps if s.code == grpc.StatusCode.OK}
    assert succeeded >= MUTATING_RPCS


def test_each_successful_mutating_call_writes_exactly_one_event_with_its_actor(world: World) -> None:
    for step in world.steps:
        if step.code != grpc.StatusCode.OK or step.rpc not in MUTATING_RPCS:
            continue
        assert len(step.events) == 1, f"{step.rpc} by {step.actor}: {len(step.events)} events"
        (event,) = step.events
        where = f"{step.rpc} by {step.actor}"
        assert operation(event) == step.rpc, where
        assert event["unmapped"]["outcome"] == "allowed" and event["status_code"] == "OK", where
        assert event["actor"]["user"]["uid"] == step.actor, where
        assert event["actor"]["user"]["type"] == step.kind, where
        assert event["actor"]["idp"]["name"] == step.issuer, where
        assert namespace(event) == step.namespace, where
        assert event["unmapped"].get("on_behalf_of", "") == step.on_behalf_of, where
        assert event["unmapped"]["cedar_policy_ids"], where  # the permit that allowed it
        assert event["metadata"]["correlation_uid"] and event["src_endpoint"]["ip"] == "127.0.0.1", where


def test_supervisor_events_carry_the_sandbox_creator(world: World) -> None:
    supervisor = [s for s in world.steps if s.kind == "supervisor"]
    assert {s.rpc for s in supervisor} == {"GetSandboxProviderEnvironment", "RefreshSandboxToken"}
    for step in supervisor:
        assert step.events[0]["unmapped"]["on_behalf_of"] == world.pid("uma")


def test_reads_write_no_event(world: World) -> None:
    (read,) = [s for s in world.steps if s.rpc == "GetSandbox"]
    assert read.events == ()


def test_a_denial_writes_one_event_with_the_deciding_policies(world: World) -> None:
    denials = [s for s in world.steps if s.code != grpc.StatusCode.OK]
    assert len(denials) == 2
    for step in denials:
        (event,) = step.events
        assert event["unmapped"]["outcome"] == "denied" and event["status_code"] == "PERMISSION_DENIED"
        assert event["actor"]["user"]["uid"] == step.actor and namespace(event) == "team"
    by_rpc = {s.rpc: s.events[0] for s in denials}
    # Raising a limit above the ceiling is denied by a forbid, named in the event.
    assert by_rpc["UpdateNamespace"]["unmapped"]["cedar_policy_ids"] == ["quota.limits_within_ceiling"]
    assert by_rpc["UpdateNamespace"]["actor"]["authorizations"] == [
        {"decision": "Deny", "policy": {"uid": "quota.limits_within_ceiling"}}
    ]
    # No permit at all: no policy decided it, and the event says so by naming none.
    assert "cedar_policy_ids" not in by_rpc["CreateProvider"]["unmapped"]


def test_every_event_validates_against_the_ocsf_api_activity_schema(world: World) -> None:
    schema = load_ocsf_schema()
    events = read_events(world.gw.data_dir)
    assert events
    for event in events:
        body = {k: v for k, v in event.items() if k not in ("hash", "prev_hash")}
        jsonschema.validate(body, schema)
        assert (event["class_uid"], event["category_uid"]) == (6003, 6)
        assert event["unmapped"]["policy_set_hash"] == world.gw.gateway.policies.current.policy_hash
