"""Differential authorization: every decision the gateway audited is re-derived by the library.

A mixed scenario (six kinds of caller, every RPC, own and other namespace) runs against a
live gateway; then its audit log is read back, each event's recorded Cedar request is
rebuilt with ``openshell_authz._diff.recorded_request`` and decided again by a fresh
``Authorizer`` over the same policy directory: same outcome, same policy ids, same
policy-set hash. The audit log records every mutating call and every denial (reads that
were allowed are not audited), so those are the decisions replayed here.
"""

from __future__ import annotations

import json
from pathlib import Path

from openshell_authz import Authorizer
from openshell_authz._audit_chain import chain_files
from openshell_authz._diff import recorded_request
from tests.gateway.harness import call_status, start_gateway
from tests.gateway.test_sweeps import plausible_request
from tests.hardening._world import RPCS, build_world

CALLERS = ("alpha-user", "alpha-admin", "alpha-sa", "beta-user", "alpha-supervisor", "root")


def test_audited_decisions_replay_identically(tmp_path: Path) -> None:
    with start_gateway(tmp_path / "data") as gw:
        world = build_world(gw)
        calls = 0
        callers = {who: world.caller(who) for who in CALLERS}  # tokens first: the scenario deletes accounts
        for caller in callers.values():
            for ns in ("alpha", "beta", "gamma"):
                for rpc in RPCS:
                    sandbox_id = world.sandbox_ids.get(ns, "00000000-0000-0000-0000-000000000000")
                    call_status(getattr(caller, rpc), plausible_request(rpc, ns, sandbox_id))
                    calls += 1
        policy_dir = gw.gateway.settings.policy_dir
        audit_path = tmp_path / "data" / "audit" / "audit.jsonl"
        events = [json.loads(line) for path in chain_files(audit_path) for line in path.read_text().splitlines()]

    library = Authorizer.from_directory(policy_dir)
    replayed = {"allowed": 0, "denied": 0}
    mismatches = []
    for index, event in enumerate(events):
        unmapped = event.get("unmapped", {})
        request = recorded_request(event)
        if request is None:
            # Only calls refused before any decision carry no request: bad tokens, bad input.
            assert unmapped.get("outcome") in ("denied", "error"), event
            continue
        recorded_allowed = unmapped["outcome"] in ("allowed", "error")  # "error": allowed, then failed
        decision = library.check(request)
        assert unmapped["policy_set_hash"] == library.policy_hash
        recorded_ids = sorted(unmapped.get("cedar_policy_ids", []))
        if decision.allowed != recorded_allowed or sorted(decision.reasons) != recorded_ids:
            mismatches.append((index, unmapped["cedar_action"], recorded_allowed, decision, unmapped))
        replayed["allowed" if recorded_allowed else "denied"] += 1
    assert mismatches == []
    # The scenario exercised both sides of the policies, at scale.
    assert replayed["allowed"] >= 40 and replayed["denied"] >= 100, (calls, replayed)
