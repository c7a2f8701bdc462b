"""`openshell-authz matrix --json` equals SPEC §4 cell for cell, and follows policy edits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from openshell_authz import Authorizer
from openshell_authz._matrix import MATRIX_ACTIONS, ROLES, SCOPES, compute_matrix
from tests.authz.conftest import POLICIES, REPO

SPEC_MATRIX = Path(__file__).with_name("spec_matrix.yaml")
_CELL = {"all": (True, True), "own": (True, False), "none": (False, False)}


def spec_cells() -> dict[tuple[str, str, str], bool]:
    """SPEC §4 as (role, action, scope) -> allowed, from spec_matrix.yaml."""
    data = yaml.safe_load(SPEC_MATRIX.read_text())
    out: dict[tuple[str, str, str], bool] = {}
    for row in data["rows"]:
        assert len(row["cells"]) == len(data["columns"]), row
        for action in row["actions"]:
            for role, cell in zip(data["columns"], row["cells"], strict=True):
                own, other = _CELL[cell]
                out[(role, action, "own")] = own
                out[(role, action, "other")] = other
    return out


def _cli_matrix(directory: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "openshell_authz.cli", "matrix", str(directory), "--json"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_spec_table_is_complete() -> None:
    cells = spec_cells()
    assert {a for _, a, _ in cells} == set(MATRIX_ACTIONS)
    assert len(cells) == len(MATRIX_ACTIONS) * len(ROLES) * len(SCOPES)


def test_matrix_json_equals_spec_cell_for_cell() -> None:
    got = _cli_matrix(POLICIES)
    assert all(set(c) == {"role", "action", "scope", "allowed"} for c in got)
    got_cells = {(c["role"], c["action"], c["scope"]): c["allowed"] for c in got}
    assert len(got_cells) == len(got), "a cell appears twice"
    expected = spec_cells()
    wrong = sorted(
        f"{r} {a} {s}: policies say {got_cells.get((r, a, s))}, §4 says {v}"
        for (r, a, s), v in expected.items()
        if got_cells.get((r, a, s)) != v
    )
    assert not wrong, "\n".join(wrong)
    assert set(got_cells) == set(expected)


def test_matrix_covers_every_schema_action(authz: Authorizer) -> None:
    assert {c.action for c in compute_matrix(authz)} == set(authz.actions)


def test_removing_a_permit_changes_the_matrix(policy_copy: Path) -> None:
    path = policy_copy / "platform.cedar"
    text = path.read_text()
    start = text.index('@id("auditor.global_read")')
    end = text.index(");", start) + 2
    path.write_text(text[:start] + text[end:])
    before = spec_cells()
    after = {(c.role, c.action, c.scope): c.allowed for c in compute_matrix(Authorizer.from_directory(policy_copy))}
    changed = {k for k in before if before[k] != after[k]}
    assert changed, "removing a permit left the matrix unchanged"
    # Exactly the global auditor's reads changed, nothing else.
    assert {role for role, _, _ in changed} == {"auditor"}
    assert all(before[k] and not after[k] for k in changed)
    assert ("auditor", "GetSandbox", "other") in changed
    assert ("auditor", "GetGatewayConfig", "own") not in changed  # granted by another policy


def test_text_matrix_reads_like_the_spec(cli: Any) -> None:
    result = cli("matrix", POLICIES)
    assert result.code == 0
    rows = {line.split()[0]: line.split()[1:] for line in result.out.splitlines()[1:-1]}
    assert rows["ExecSandbox"] == ["all", "-", "own", "-", "own", "own", "-"]
    assert rows["GetSandbox"][-1] == "own"
    assert result.out.splitlines()[0].split() == list(ROLES)
