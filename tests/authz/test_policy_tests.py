"""The YAML policy tests: the real set passes them, they cover §4, and fail-closed is proven."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cedarpy
import pytest
import yaml

from openshell_authz import Authorizer, PolicyTestFailure, Request
from openshell_authz._entities import entities_json, entity_uid
from openshell_authz._matrix import MATRIX_ACTIONS
from openshell_authz._policy_tests import WORLD_FILE, _load_cases, load_world, run_policy_tests
from tests.authz.conftest import POLICIES, SAMPLES

FAIL_CLOSED = SAMPLES / "fail_closed"


def _all_cases() -> list:
    base = yaml.safe_load((POLICIES / "tests" / WORLD_FILE).read_text())["world"]
    return [
        case
        for path in sorted((POLICIES / "tests").glob("*.yaml"))
        if path.name != WORLD_FILE
        for case in _load_cases(path, base)
    ]


def test_the_policies_pass_their_own_tests(authz: Authorizer) -> None:
    report = run_policy_tests(POLICIES, authz)
    assert report.ok, [f.describe() for f in report.failures] + list(report.file_errors)
    report.raise_if_failed()
    assert report.total == len(_all_cases()) > 400


def test_every_row_has_an_allow_and_a_deny_per_role() -> None:
    seen: dict[tuple[str, str], set[str]] = {}
    for case in _all_cases():
        seen.setdefault((case.request.action, case.request.principal.kind), set()).add(case.expect)
    for action in MATRIX_ACTIONS:
        verdicts = set().union(*(v for (a, _), v in seen.items() if a == action))
        assert verdicts == {"allow", "deny"}, action
        for kind in ("user", "service_account", "supervisor"):
            assert (action, kind) in seen, (action, kind)


def test_cross_cutting_rules_each_have_a_case_naming_their_forbid(authz: Authorizer) -> None:
    reasons = {r for case in _all_cases() for r in case.reasons}
    forbids = {pid for pid, info in authz.policies.items() if info["effect"] == "forbid"}
    untested = forbids - reasons - {"supervisor.actions_only_for_supervisors",
                                    "service_account.confined_to_own_namespace"}
    assert not untested


def test_another_policy_set_fails_these_tests() -> None:
    sample = Authorizer.from_directory(FAIL_CLOSED)
    report = run_policy_tests(POLICIES, sample)
    assert not report.ok
    with pytest.raises(PolicyTestFailure, match=r"^\d+ policy test\(s\) failed, 0 bad test file\(s\); first: FAIL "):
        report.raise_if_failed()
    assert report.failed > 100
    problems = {f.problem for f in report.failures}
    assert "decision differs" in problems
    assert "expected reason terminating.no_creates not among the determining policies" in problems
    flipped = next(f for f in report.failures if f.problem == "decision differs")
    assert flipped.expected != flipped.got
    text = flipped.describe()
    assert flipped.name in text and f"expected {flipped.expected}, got {flipped.got}" in text


def test_fail_closed_erroring_forbid_denies() -> None:
    """Cedar alone skips the erroring forbid and allows; the Authorizer denies and reports it."""
    world = load_world(yaml.safe_load((FAIL_CLOSED / "tests" / "cases.yaml").read_text())["world"])
    request = Request(world.principal("user:uma"), "CreateSandbox", world.resource("namespace:huge"))

    text = "\n".join(p.read_text() for p in sorted(FAIL_CLOSED.glob("*.cedar")))
    raw = cedarpy.is_authorized(
        {
            "principal": entity_uid(request.principal),
            "action": {"type": "Action", "id": "CreateSandbox"},
            "resource": entity_uid(request.resource),
            "context": {},
        },
        cedarpy.PolicySet.from_str(text),
        json.loads(entities_json([request.principal, request.resource])),
        schema=cedarpy.Schema.from_str((FAIL_CLOSED / "schema.cedarschema").read_text()),
    )
    assert raw.allowed, "Cedar on its own should have skipped the erroring forbid and allowed"
    assert raw.diagnostics.errors

    response = Authorizer.from_directory(FAIL_CLOSED).check(request)
    assert not response.allowed
    assert response.errors and any("overflow" in e for e in response.errors)

    report = run_policy_tests(FAIL_CLOSED)
    assert report.ok and report.passed == 3


def test_malformed_test_file_is_reported_not_skipped(tmp_path: Path) -> None:
    shutil.copytree(FAIL_CLOSED, tmp_path / "set", symlinks=False)
    (tmp_path / "set" / "tests" / "broken.yaml").write_text(
        "cases:\n  - {name: x, principal: user:nobody, action: WhoAmI, resource: gateway, expect: allow}\n"
    )
    report = run_policy_tests(tmp_path / "set")
    assert not report.ok
    assert report.passed == 3
    (err,) = report.file_errors
    assert "broken.yaml" in err and "unknown principal 'user:nobody'" in err and "\n" not in err


def test_policies_without_tests_have_nothing_to_fail(tmp_path: Path) -> None:
    shutil.copytree(SAMPLES / "duplicate_id", tmp_path / "set", ignore=shutil.ignore_patterns("b.cedar"))
    report = run_policy_tests(tmp_path / "set")
    assert report.ok and report.total == 0
