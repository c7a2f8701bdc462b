"""`openshell-authz`: every subcommand, its output and its exit status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from openshell_authz import (
    Authorizer,
    ListContext,
    Namespace,
    Request,
    Sandbox,
    SupervisorPrincipal,
    UserPrincipal,
    request_to_dict,
)
from openshell_authz._audit_chain import GENESIS_HASH, encode_line, line_hash
from openshell_authz.models import GlobalRole, Membership, NamespaceRole
from tests.authz.conftest import POLICIES, REPO, SAMPLES

TEAM = Namespace(id="ns-team", name="team")
AUDITOR = UserPrincipal(id="iss#gail", global_roles=frozenset({GlobalRole.AUDITOR}))
MEMBER = UserPrincipal(id="iss#uma", memberships=(Membership(namespace_id="ns-team", role=NamespaceRole.USER),))
SANDBOX = Sandbox(id="sb-1", name="box", namespace=TEAM)


def _write_chain(path: Path, events: list[dict[str, Any]]) -> None:
    prev = GENESIS_HASH
    with path.open("wb") as out:
        for event in events:
            line = encode_line(event, prev)
            out.write(line + b"\n")
            prev = line_hash(line)


def _one_line(text: str) -> str:
    assert text.count("\n") == 1, f"expected one line on stderr, got {text!r}"
    return text.strip()


def test_console_script_runs_as_a_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "openshell_authz.cli", "validate", "policies"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ")


def test_validate_prints_count_and_hash(cli: Any, authz: Authorizer) -> None:
    result = cli("validate", POLICIES)
    assert result.code == 0
    assert f"{len(authz.policies)} policies" in result.out
    assert authz.policy_hash in result.out


@pytest.mark.parametrize("sample", ["bad_syntax", "bad_schema_attr", "bad_schema_type", "missing_id", "duplicate_id"])
def test_validate_bad_file_prints_file_line_message(cli: Any, sample: str) -> None:
    result = cli("validate", SAMPLES / sample)
    assert result.code == 1
    assert result.out == ""
    assert re.match(rf"^{re.escape(str(SAMPLES / sample))}/\w+\.cedar:\d+: \S", _one_line(result.err))


def test_test_passes_on_the_real_policies(cli: Any) -> None:
    result = cli("test", POLICIES)
    assert result.code == 0, result.out
    assert re.search(r"^\d+ passed, 0 failed$", result.out, re.M)


def test_test_reports_a_failing_case(cli: Any, policy_copy: Path) -> None:
    path = policy_copy / "tests" / "cross_cutting.yaml"
    path.write_text(path.read_text().replace(
        "resource: namespace:default, expect: deny, reason: namespace.default_is_permanent",
        "resource: namespace:default, expect: allow"))
    result = cli("test", policy_copy)
    assert result.code == 1
    (line,) = [ln for ln in result.out.splitlines() if ln.startswith("FAIL")]
    assert "platform admin cannot delete default" in line
    assert "expected allow, got deny" in line and "namespace.default_is_permanent" in line
    assert re.search(r"^\d+ passed, 1 failed$", result.out, re.M)


def test_test_without_cases_fails(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "schema.cedarschema").write_text((POLICIES / "schema.cedarschema").read_text())
    (tmp_path / "p.cedar").write_text('@id("a")\npermit (principal, action == Action::"WhoAmI", resource);\n')
    result = cli("test", tmp_path)
    assert result.code == 1
    assert "no test cases" in _one_line(result.err)


def test_test_on_a_broken_policy_dir_fails(cli: Any) -> None:
    result = cli("test", SAMPLES / "bad_syntax")
    assert result.code == 1
    assert "policies.cedar:7: syntax error" in _one_line(result.err)


def test_explain_with_world_references(cli: Any) -> None:
    result = cli("explain", POLICIES, "--principal", "user:pat", "--action", "DeleteNamespace",
                 "--resource", "namespace:default")
    assert result.code == 0
    assert "decision: deny" in result.out
    assert re.search(r"determined by: namespace\.default_is_permanent \(.*forbids\.cedar:\d+, forbid\)", result.out)


def test_explain_with_context(cli: Any) -> None:
    result = cli("explain", POLICIES, "--principal", "user:uma", "--action", "ListSandboxes",
                 "--resource", "namespace:team-a", "--context", '{"all_namespaces": true}')
    assert "decision: deny" in result.out
    assert "lists.all_namespaces_needs_global_role" in result.out


def test_explain_recorded_request_reports_errors(cli: Any, tmp_path: Path) -> None:
    huge = Namespace(id="ns-huge", name="huge", ceiling={"max_gpus": 10**16})
    member = UserPrincipal(id="iss#uma", memberships=(Membership(namespace_id="ns-huge", role=NamespaceRole.USER),))
    path = tmp_path / "req.json"
    path.write_text(json.dumps(request_to_dict(Request(member, "CreateSandbox", huge))))
    result = cli("explain", SAMPLES / "fail_closed", "--request", path)
    assert result.code == 0
    assert "decision: deny" in result.out
    assert re.search(r"^error: .*overflow", result.out, re.M)


def test_explain_allow_names_the_permit(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "req.json"
    path.write_text(json.dumps(request_to_dict(Request(SupervisorPrincipal(sandbox=SANDBOX), "GetSandbox", SANDBOX))))
    result = cli("explain", POLICIES, "--request", path)
    assert "decision: allow" in result.out
    assert "determined by: supervisor.own_sandbox" in result.out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["validate"],
        ["explain", str(POLICIES), "--principal", "user:pat"],
        ["explain", str(POLICIES), "--principal", "user:nobody", "--action", "WhoAmI", "--resource", "gateway"],
        ["explain", str(POLICIES), "--principal", "user:pat", "--action", "WhoAmI", "--resource", "gateway",
         "--context", "{not json"],
        ["audit"],
    ],
)
def test_usage_errors_exit_2_with_one_line(cli: Any, argv: list[str]) -> None:
    result = cli(*argv)
    assert result.code == 2
    assert _one_line(result.err).startswith("openshell-authz: error: ")


def test_diff_reports_matrix_and_replayed_changes(cli: Any, policy_copy: Path, tmp_path: Path) -> None:
    path = policy_copy / "platform.cedar"
    text = path.read_text()
    start = text.index('@id("auditor.global_read")')
    path.write_text(text[:start] + text[text.index(");", start) + 2 :])
    audit = tmp_path / "audit.jsonl"
    _write_chain(audit, [
        # As the gateway writes them: the recorded request, as JSON text, under unmapped.extra.
        {"activity": "read", "unmapped": {"extra": {"authz_request": json.dumps(request_to_dict(
            Request(AUDITOR, "ListSandboxes", TEAM, ListContext())))}}},
        {"activity": "startup"},
        {"activity": "read", "unmapped": {"extra": {"authz_request": json.dumps(request_to_dict(
            Request(MEMBER, "GetSandbox", SANDBOX)))}}},
    ])
    result = cli("diff", POLICIES, policy_copy, "--requests", audit)
    assert result.code == 0
    assert re.search(r"^matrix: \d+ cells change$", result.out, re.M)
    assert "  auditor GetSandbox other: allow -> deny" in result.out
    assert "namespace_admin" not in result.out
    assert "requests: 2 replayed, 1 events without a recorded request, 1 decisions change" in result.out
    assert re.search(r"event 1: user iss#gail ListSandboxes namespace ns-team.*: allow -> deny", result.out)
    assert cli("diff", POLICIES, policy_copy, "--exit-code").code == 1
    same = cli("diff", POLICIES, POLICIES, "--requests", audit, "--exit-code")
    assert same.code == 0 and "matrix: 0 cells change" in same.out


def test_audit_verify_good_and_tampered(cli: Any, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    _write_chain(audit, [{"n": i} for i in range(5)])
    ok = cli("audit", "verify", audit)
    assert ok.code == 0 and "5 lines" in ok.out
    lines = audit.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"n":2', b'"n":7')
    audit.write_bytes(b"".join(lines))
    bad = cli("audit", "verify", audit)
    assert bad.code == 1
    assert _one_line(bad.err).startswith(f"{audit}:3: ")
    assert cli("audit", "verify", tmp_path / "missing.jsonl").code == 2
